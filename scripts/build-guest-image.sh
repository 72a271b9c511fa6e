#!/usr/bin/env bash
# Builds the Stratus test guest image, build/guest/stratus-test.qcow2 (plays CirrOS's role):
# the Debian cloud kernel, a small initramfs that loads the virtio/IDE drivers, and an ext4
# root with static busybox, dropbear and the init scripts of src/agent/guest-image/.
#
# Needs no network, no loop device and no mount: the disk is assembled from file images
# (sfdisk, syslinux's MBR, a FAT16 boot partition made bootable by the mtools-based
# `syslinux --install`, an ext4 root made by `mke2fs -d`), then compressed to qcow2.
# Cached: rebuilt only when this script, the guest files or the Debian packages change.
#   scripts/build-guest-image.sh [--force]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/sbin:/sbin   # mkfs.fat, sfdisk, mke2fs, debugfs for non-root builders

src=src/agent/guest-image
out=build/guest
img=$out/stratus-test.qcow2
log() { printf '[guest-image] %s\n' "$*" >&2; }

kpkg=$(dpkg-query -W -f='${Depends}' linux-image-cloud-amd64 2>/dev/null | awk '{print $1}')
kver=${kpkg#linux-image-}
if [[ -z $kpkg || ! -f /boot/vmlinuz-$kver ]]; then
  log "needs the Debian packages linux-image-cloud-amd64 busybox-static dropbear-bin syslinux mtools dosfstools fdisk e2fsprogs qemu-utils cpio (scripts/setup.sh installs them)"
  exit 1
fi

# Inputs: this script, every guest file, the versions of the packages whose files go in.
pkgs=(linux-image-cloud-amd64 "$kpkg" busybox-static dropbear-bin libc6 libcrypt1 libgmp10
  libtomcrypt1 libtommath1 zlib1g syslinux syslinux-common mtools dosfstools e2fsprogs fdisk qemu-utils)
inputs=$( { sha256sum <"$0"; (cd "$src" && sha256sum $(find . -type f ! -name '*.ts' | LC_ALL=C sort))
            dpkg-query -W -f='${Package}=${Version}\n' "${pkgs[@]}" 2>/dev/null; } | sha256sum | cut -c1-64)
size() { du -h --apparent-size "$img" | cut -f1; }
if [[ ${1:-} != --force && -f $img && -f $img.sha256 && "$(cat "$out/inputs.sha256" 2>/dev/null)" == "$inputs" ]]; then
  log "up to date: $img ($(size))"
  exit 0
fi

start=$(date +%s.%N)
mkdir -p "$out"
work=$(mktemp -d "$out/work.XXXXXX")
[[ -n ${STRATUS_GUEST_KEEP_WORK:-} ]] || trap 'rm -rf "$work"' EXIT
export MTOOLS_SKIP_CHECK=1
# Reproducible where it is cheap: fixed ids and timestamps derived from the inputs.
export E2FSPROGS_FAKE_TIME=1700000000 SOURCE_DATE_EPOCH=1700000000
fs_uuid=$(echo "$inputs" | sed -E 's/^(.{8})(.{4})(.{4})(.{4})(.{12}).*/\1-\2-\3-\4-\5/')

# --- root filesystem -----------------------------------------------------------------
r=$work/root
mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,etc/init.d,etc/acpi/PWRF,etc/dropbear,dev,proc,sys,run,tmp,root} \
  "$r"/{var/log,var/lib/stratus,home/stratus,lib/stratus,lib64,lib/x86_64-linux-gnu,usr/share/udhcpc}
ln -s /run "$r/var/run"
chmod 1777 "$r/tmp"
chmod 700 "$r/root"
cp /bin/busybox "$r/bin/busybox"
for applet in $("$r/bin/busybox" --list-full); do
  [[ -e $r/$applet || -L $r/$applet ]] || ln -s /bin/busybox "$r/$applet"
done
# ping needs a raw socket, and busybox's shell runs applets from /proc/self/exe: so busybox
# is setuid root. It keeps root only for the applets marked so (ping, traceroute, findfs;
# su/passwd/login, which authenticate) and drops it for every other one.
chmod 4755 "$r/bin/busybox"
for b in /usr/sbin/dropbear /usr/bin/dropbearkey /usr/bin/dbclient; do
  cp "$b" "$r$b"
  for lib in $(ldd "$b" | awk '/=>/ {print $3} /ld-linux/ {print $1}'); do
    [[ -f $r$lib ]] || cp -L "$lib" "$r$lib"
  done
done
ln -s dbclient "$r/usr/bin/ssh"

install -m 755 "$src/rcS" "$r/etc/init.d/rcS"
install -m 755 "$src/rcK" "$r/etc/init.d/rcK"
install -m 644 "$src/inittab" "$r/etc/inittab"
install -m 644 "$src/lib.sh" "$r/lib/stratus/lib.sh"
install -m 644 "$src/metadata.sh" "$r/lib/stratus/metadata.sh"
install -m 755 "$src/udhcpc.script" "$r/usr/share/udhcpc/default.script"
install -m 755 "$src/power-button" "$r/etc/acpi/PWRF/00000080"
install -m 755 "$src/hotplug" "$r/lib/stratus/hotplug"

# The login user: SSH by key only (dropbear -s); "stratus" is its password on the
# console (serial, VNC), as CirrOS has one. root: keys only.
pwhash=$(busybox mkpasswd -m sha512 -S stratusguestimg stratus)
cat >"$r/etc/passwd" <<EOF
root:x:0:0:root:/root:/bin/sh
stratus:x:1000:1000:Stratus test user:/home/stratus:/bin/sh
EOF
cat >"$r/etc/shadow" <<EOF
root:*:19000:0:99999:7:::
stratus:$pwhash:19000:0:99999:7:::
EOF
chmod 600 "$r/etc/shadow"
printf 'root:x:0:\ntty:x:5:\nstratus:x:1000:\n' >"$r/etc/group"
printf '/bin/sh\n/bin/ash\n' >"$r/etc/shells"
printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n' >"$r/etc/nsswitch.conf"
echo stratus >"$r/etc/hostname"
: >"$r/etc/resolv.conf"
printf 'Stratus test guest \\n (login: stratus)\n\n' >"$r/etc/issue"
cat >"$r/etc/profile" <<'EOF'
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
export PS1='\u@\h:\w\$ '
EOF
echo "$inputs" >"$r/etc/stratus-image"

# --- initramfs: busybox, the driver modules (dependencies first), /init ----------------
i=$work/initramfs
mkdir -p "$i"/{bin,dev,proc,sys,newroot,lib/modules}
cp /bin/busybox "$i/bin/busybox"
install -m 755 "$src/initramfs-init" "$i/init"
mods=$(grep -v '^\s*\(#\|$\)' "$src/modules")
: >"$i/lib/modules/modules.order"
deps=$(for m in $mods; do modprobe -S "$kver" --show-depends "$m" || echo "missing $m"; done)
if grep -q '^missing' <<<"$deps"; then log "kernel $kver lacks modules: $(grep '^missing' <<<"$deps" | cut -d' ' -f2 | xargs)"; exit 1; fi
for ko in $(awk '$1 == "insmod" {print $2}' <<<"$deps" | awk '!seen[$0]++'); do
  rel=${ko#/lib/modules/$kver/}
  mkdir -p "$i/lib/modules/$(dirname "$rel")"
  cp "$ko" "$i/lib/modules/$rel"
  echo "$rel" >>"$i/lib/modules/modules.order"
done
find "$r" "$i" -exec touch -h -d @1700000000 {} +
(cd "$i" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible --quiet) | gzip -9n >"$work/initrd.img"

# syslinux writes its files with the current time: give every short directory entry of
# the FAT16 root directory one fixed time, so that the same inputs make the same image.
fat_fix_times() {
  local f=$1 u16 bps rsv nfat fatsz rootents off e attr first
  u16() { od -An -tu2 -j "$1" -N2 "$f" | tr -d ' '; }
  bps=$(u16 11) rsv=$(u16 14) fatsz=$(u16 22) rootents=$(u16 17)
  nfat=$(od -An -tu1 -j 16 -N1 "$f" | tr -d ' ')
  off=$(( (rsv + nfat * fatsz) * bps ))
  for ((e = 0; e < rootents; e++)); do
    first=$(od -An -tu1 -j $((off + e * 32)) -N1 "$f" | tr -d ' ')
    (( first == 0 )) && break
    attr=$(od -An -tu1 -j $((off + e * 32 + 11)) -N1 "$f" | tr -d ' ')
    (( attr == 15 || first == 229 )) && continue     # long-name part, deleted entry
    # bytes 13-19: creation time/date, access date; 22-25: write time/date (2023-11-14 00:00)
    printf '\x00\x00\x00\x6e\x57\x6e\x57' | dd of="$f" bs=1 seek=$((off + e * 32 + 13)) conv=notrunc status=none
    printf '\x00\x00\x6e\x57' | dd of="$f" bs=1 seek=$((off + e * 32 + 22)) conv=notrunc status=none
  done
}

# --- disk: MBR, FAT16 boot partition (syslinux, kernel, initramfs), ext4 root ----------
boot_mib=32 root_mib=223
cat >"$work/syslinux.cfg" <<'EOF'
DEFAULT stratus
PROMPT 0
TIMEOUT 0
LABEL stratus
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND root=LABEL=stratus-root console=tty0 console=ttyS0,115200n8 quiet loglevel=3 random.trust_cpu=on tsc=reliable
EOF
cp "/boot/vmlinuz-$kver" "$work/vmlinuz"
touch -d @1700000000 "$work/vmlinuz" "$work/syslinux.cfg" "$work/initrd.img"
# -h: the partition starts at sector 2048; syslinux's boot sector finds ldlinux.sys by it.
mkfs.fat -F 16 -n STRATUSBOOT -i 53545254 -h 2048 -C "$work/boot.img" $((boot_mib * 1024)) >/dev/null
mcopy -m -i "$work/boot.img" "$work/vmlinuz" "$work/initrd.img" "$work/syslinux.cfg" ::/
syslinux --install "$work/boot.img"
fat_fix_times "$work/boot.img"

mke2fs -q -t ext4 -L stratus-root -U "$fs_uuid" -E "root_owner=0:0,hash_seed=$fs_uuid" -m 1 \
  -d "$r" "$work/root.img" "${root_mib}M" >/dev/null
# mke2fs -d copies each file's ctime (which touch cannot set) and owner (the builder's, when
# not root): make them fixed and root's.
(cd "$r" && find . -mindepth 1 | sed 's|^\.||' | while read -r p; do
   printf 'sif "%s" ctime @1700000000\n' "$p"
   [[ $(id -u) -eq 0 ]] || printf 'sif "%s" uid 0\nsif "%s" gid 0\n' "$p" "$p"
 done
 echo 'ssv kbytes_written 0') >"$work/fix.debugfs"
debugfs -w -f "$work/fix.debugfs" "$work/root.img" >/dev/null 2>&1

raw=$work/disk.raw
truncate -s $((1 + boot_mib + root_mib))M "$raw"
sfdisk --quiet "$raw" <<EOF
label: dos
label-id: 0x53545254
start=2048, size=$((boot_mib * 2048)), type=6, bootable
start=$(((1 + boot_mib) * 2048)), size=$((root_mib * 2048)), type=83
EOF
dd if=/usr/lib/syslinux/mbr/mbr.bin of="$raw" bs=440 count=1 conv=notrunc status=none
dd if="$work/boot.img" of="$raw" bs=1M seek=1 conv=notrunc status=none
dd if="$work/root.img" of="$raw" bs=1M seek=$((1 + boot_mib)) conv=notrunc status=none

qemu-img convert -c -O qcow2 "$raw" "$work/out.qcow2"
mv "$work/out.qcow2" "$img"
(cd "$out" && sha256sum "$(basename "$img")" >"$(basename "$img").sha256")
echo "$inputs" >"$out/inputs.sha256"
log "built $img ($(size), kernel $kver) in $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
