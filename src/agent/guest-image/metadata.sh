# Metadata of the Stratus test guest: config drive (ISO9660/VFAT labelled config-2), else
# the OpenStack metadata service, else its EC2 paths. Fills $MD (a directory) with
#   source  hostname  instance-id  keys (one public key a line)  user_data (when given)
# Sourced by rcS after lib.sh.
MD=/run/stratus/metadata
MD_URL=http://169.254.169.254
MD_BUDGET=${MD_BUDGET:-4}   # seconds to wait for a metadata service that does not answer
MD_REQUEST_TIMEOUT=20       # seconds per request once it does

# busybox wget -T segfaults (1.35): bound every request with timeout instead.
md_get() { # url file seconds
  timeout "$3" wget -q -O "$2" "$1" 2>/dev/null && return 0
  local rc=$?
  rm -f "$2"
  return $rc
}

md_from_openstack_json() { # meta_data.json
  local flat=$MD/meta_data.flat
  json_flatten "$1" >"$flat"
  json_get "$flat" uuid >"$MD/instance-id"
  local h
  h=$(json_get "$flat" hostname)
  [ -n "$h" ] || h=$(json_get "$flat" name)
  echo "$h" >"$MD/hostname"
  # public_keys is a name -> key map; "keys" the newer list form (type ssh).
  { awk -F '\t' '$1 ~ /^public_keys\./ { print $2 }' "$flat"
    awk -F '\t' '$1 ~ /^keys\.[0-9]+\.data$/ { print $2 }' "$flat"
  } | awk 'NF && !seen[$0]++' >"$MD/keys"
}

md_config_drive() {
  local dev
  dev=$(findfs LABEL=config-2 2>/dev/null) || dev=$(findfs LABEL=CONFIG-2 2>/dev/null) || return 1
  mkdir -p /run/stratus/config-drive
  mount -o ro "$dev" /run/stratus/config-drive 2>/dev/null || return 1
  local d=/run/stratus/config-drive/openstack/latest
  if [ ! -f "$d/meta_data.json" ]; then
    umount /run/stratus/config-drive
    return 1
  fi
  cp "$d/meta_data.json" "$MD/meta_data.json"
  [ -f "$d/user_data" ] && cp "$d/user_data" "$MD/user_data"
  umount /run/stratus/config-drive
  md_from_openstack_json "$MD/meta_data.json"
  echo config-drive >"$MD/source"
}

md_ec2() {
  local base=$MD_URL/latest t=$MD_REQUEST_TIMEOUT
  md_get "$base/meta-data/instance-id" "$MD/instance-id" $t || return 1
  md_get "$base/meta-data/hostname" "$MD/hostname" $t || md_get "$base/meta-data/local-hostname" "$MD/hostname" $t
  : >"$MD/keys"
  if md_get "$base/meta-data/public-keys/" "$MD/public-keys" $t; then
    # lines "0=name": the key is at public-keys/0/openssh-key
    for idx in $(cut -d= -f1 "$MD/public-keys"); do
      md_get "$base/meta-data/public-keys/$idx/openssh-key" "$MD/key.tmp" $t && cat "$MD/key.tmp" >>"$MD/keys" && echo >>"$MD/keys"
    done
    rm -f "$MD/key.tmp"
  fi
  md_get "$base/user-data" "$MD/user_data" $t
  echo ec2 >"$MD/source"
}

# Only worth trying with a route to it. Whether anything listens is probed with nc first
# (connect only: refused is retried, silence gives up after MD_BUDGET s); once something
# does, requests may take MD_REQUEST_TIMEOUT s (a loaded host makes everything slow).
md_service() {
  ip -4 route get 169.254.169.254 >/dev/null 2>&1 || return 1
  local deadline=$(( $(date +%s) + MD_BUDGET )) left
  while :; do
    left=$(( deadline - $(date +%s) ))
    [ "$left" -gt 0 ] || return 1
    if timeout $((left + 1)) nc -w "$left" 169.254.169.254 80 </dev/null >/dev/null 2>&1; then
      if md_get "$MD_URL/openstack/latest/meta_data.json" "$MD/meta_data.json" "$MD_REQUEST_TIMEOUT"; then
        md_get "$MD_URL/openstack/latest/user_data" "$MD/user_data" "$MD_REQUEST_TIMEOUT"
        md_from_openstack_json "$MD/meta_data.json"
        echo metadata-service >"$MD/source"
        return 0
      fi
      md_ec2 && return 0                 # it answers, but not the OpenStack paths
    fi
    sleep 1                              # refused, or not ready yet
  done
}

md_fetch() {
  rm -rf "$MD"
  mkdir -p "$MD"
  md_config_drive || md_service || echo none >"$MD/source"
}
