# Shared shell functions of the Stratus test guest (busybox sh), installed as
# /lib/stratus/lib.sh.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin

# A console marker: one line, fixed prefix, parsed by the agent and the tests.
# Also logged with the uptime to /var/log/boot.log.
# After boot a getty prompt may hold the console line: start a fresh one.
marker() {
  if [ -f /run/stratus/booted ]; then
    printf '\nSTRATUS-GUEST: %s\n' "$*" >/dev/console
  else
    echo "STRATUS-GUEST: $*" >/dev/console
  fi
  echo "[$(cut -d' ' -f1 /proc/uptime)] STRATUS-GUEST: $*" >>/var/log/boot.log 2>/dev/null
}

# net_start <ifname>: DHCP on one NIC. udhcpc gives up waiting after ~5 s without a server
# (dnsmasq pings a dynamic address for ~3 s before it offers it)
# and keeps trying in the background; with a lease it stays to renew it.
net_start() {
  ip link set dev "$1" up
  udhcpc -i "$1" -b -t 5 -T 1 -A 5 -S -s /usr/share/udhcpc/default.script \
    -p "/run/udhcpc.$1.pid" -O mtu -O staticroutes -O search -x "hostname:$(hostname)"
}

# net_marker <ifname>: what the NIC got.
net_marker() {
  local addr
  addr=$(cat "/run/stratus/net.$1" 2>/dev/null)
  marker "net $1 ip=${addr:-none} mac=$(cat "/sys/class/net/$1/address")"
}

# json_flatten <file>: prints one "path<TAB>value" line per scalar of a JSON document,
# paths joined with "." (array indices as numbers): public_keys.mykey<TAB>ssh-ed25519 ...
json_flatten() {
  awk '
    function ws() { while (pos <= n && index(" \t\r\n", substr(s, pos, 1))) pos++ }
    function str(   out, c, h) {
      out = ""; pos++
      while (pos <= n) {
        c = substr(s, pos, 1)
        if (c == "\"") { pos++; return out }
        if (c == "\\") {
          pos++; c = substr(s, pos, 1)
          if (c == "n") c = "\n"; else if (c == "t") c = "\t"; else if (c == "r") c = "\r"
          else if (c == "b" || c == "f") c = ""
          else if (c == "u") { h = substr(s, pos + 1, 4); pos += 4; c = (h ~ /^00[2-7]/) ? sprintf("%c", hex(h)) : "?" }
        }
        out = out c; pos++
      }
      return out
    }
    function hex(h,   v, i) { v = 0; for (i = 1; i <= length(h); i++) v = v * 16 + index("0123456789abcdef", tolower(substr(h, i, 1))) - 1; return v }
    function join(p, k) { return p == "" ? k : p "." k }
    function emit(p, v) { gsub(/[\r\n\t]+/, " ", v); sub(/^ +/, "", v); sub(/ +$/, "", v); print p "\t" v }
    function value(p,   c, k, i, lit) {
      ws(); c = substr(s, pos, 1)
      if (c == "{") {
        pos++; ws()
        if (substr(s, pos, 1) == "}") { pos++; return }
        while (pos <= n) {
          ws(); k = str(); ws(); pos++   # the colon
          value(join(p, k)); ws()
          c = substr(s, pos, 1); pos++
          if (c != ",") return
        }
      } else if (c == "[") {
        pos++; ws(); i = 0
        if (substr(s, pos, 1) == "]") { pos++; return }
        while (pos <= n) {
          value(join(p, i++)); ws()
          c = substr(s, pos, 1); pos++
          if (c != ",") return
        }
      } else if (c == "\"") {
        emit(p, str())
      } else {
        lit = ""
        while (pos <= n && !index(",]} \t\r\n", substr(s, pos, 1))) { lit = lit substr(s, pos, 1); pos++ }
        emit(p, lit)
      }
    }
    { s = s $0 "\n" }
    END { n = length(s); pos = 1; value("") }
  ' "$1"
}

# json_get <flat-file> <path>: the value at exactly that path.
json_get() {
  awk -F '\t' -v k="$2" '$1 == k { sub(/^[^\t]*\t/, ""); print; exit }' "$1"
}

# key_fingerprint <public key line>: the SHA256 fingerprint as `ssh-keygen -l` prints it.
key_fingerprint() {
  local blob= prev=
  for f in $1; do
    case "$prev" in
      ssh-*|ecdsa-*|sk-*) blob=$f; break ;;
    esac
    prev=$f
  done
  [ -n "$blob" ] || return 1
  local hex
  hex=$(echo "$blob" | base64 -d 2>/dev/null | sha256sum | cut -c1-64) || return 1
  echo "SHA256:$(echo "$hex" | xxd -r -p | base64 | tr -d '=\n')"
}

# sanitize_hostname <name>: first label, letters/digits/hyphens, at most 63 characters.
sanitize_hostname() {
  echo "${1%%.*}" | tr -c 'A-Za-z0-9-\n' '-' | sed 's/^-*//; s/-*$//' | cut -c1-63
}
