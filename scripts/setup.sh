#!/usr/bin/env bash
# Installs what Stratus needs on a Debian machine, idempotently, then builds it.
#   scripts/setup.sh          what `npm start` needs
#   scripts/setup.sh --test   plus what the test suite needs (openstack CLI, ping, ...)
# Each step checks before it acts, so a second run takes a second or two.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

log() { printf '[setup] %s\n' "$*" >&2; }

# Debian packages: the runtime (hypervisor, data plane, guest image build) and, for tests, the clients.
runtime_pkgs=(qemu-system-x86 qemu-utils genisoimage dnsmasq-base iproute2 nftables iptables
  openssh-client linux-image-cloud-amd64 busybox-static dropbear-bin syslinux syslinux-common
  mtools dosfstools fdisk e2fsprogs cpio zstd kmod novnc)
test_pkgs=(python3-openstackclient python3-openstacksdk python3-osc-placement iputils-ping socat iperf3 curl chromium strace)

pkgs=("${runtime_pkgs[@]}")
(( want_test )) && pkgs+=("${test_pkgs[@]}")

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if (( ${#missing[@]} )); then
  if [[ $(id -u) -ne 0 ]]; then
    log "missing Debian packages (run as root to install them): ${missing[*]}"
  else
    log "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

# npm packages: reinstall only when the lockfile changed since the last install.
stamp=node_modules/.stratus-lock-sha
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ ! -f $stamp || "$(cat "$stamp")" != "$want" ]]; then
  log "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi

# tsc takes seconds even when nothing changed: skip it when no input is newer than the last
# successful build (the stamp is written only when tsc succeeded).
built=dist/.stratus-build-ok
if [[ -f $built && -z $(find src test bench scripts tsconfig.json package.json package-lock.json -newer "$built" -print -quit) ]]; then
  log "build up to date"
else
  log "building (tsc)"
  npx tsc -p tsconfig.json
  touch "$built"
fi

# The test guest image (plays CirrOS's role); the script caches by its inputs.
if [[ -x scripts/build-guest-image.sh ]]; then
  scripts/build-guest-image.sh
fi
log "ready"
