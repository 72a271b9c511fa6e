# Metadata of the Stratus test guest: config drive (ISO9660/VFAT labelled config-2), else
# the OpenStack metadata service, else its EC2 paths. Fills $MD (a directory) with
#   source  hostname  instance-id  keys (one public key a line)  user_data (when given)
# Sourced by rcS after lib.sh.
MD=/run/stratus/metadata
MD_URL=http://169.254.169.254
MD_BUDGET=${MD_BUDGET:-4}   # seconds to wait for a metadata service that does not answer

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
  local base=$MD_URL/latest
  md_get "$base/meta-data/instance-id" "$MD/instance-id" 2 || return 1
  md_get "$base/meta-data/hostname" "$MD/hostname" 2 || md_get "$base/meta-data/local-hostname" "$MD/hostname" 2
  : >"$MD/keys"
  if md_get "$base/meta-data/public-keys/" "$MD/public-keys" 2; then
    # lines "0=name": the key is at public-keys/0/openssh-key
    for idx in $(cut -d= -f1 "$MD/public-keys"); do
      md_get "$base/meta-data/public-keys/$idx/openssh-key" "$MD/key.tmp" 2 && cat "$MD/key.tmp" >>"$MD/keys" && echo >>"$MD/keys"
    done
    rm -f "$MD/key.tmp"
  fi
  md_get "$base/user-data" "$MD/user_data" 2
  echo ec2 >"$MD/source"
}

# Only worth trying with a route to it: a service that does not answer costs MD_BUDGET s.
md_service() {
  ip -4 route get 169.254.169.254 >/dev/null 2>&1 || return 1
  local deadline=$(( $(date +%s) + MD_BUDGET )) left rc
  while :; do
    left=$(( deadline - $(date +%s) ))
    [ "$left" -gt 0 ] || return 1
    md_get "$MD_URL/openstack/latest/meta_data.json" "$MD/meta_data.json" "$left"
    rc=$?
    if [ $rc -eq 0 ]; then
      md_get "$MD_URL/openstack/latest/user_data" "$MD/user_data" 2
      md_from_openstack_json "$MD/meta_data.json"
      echo metadata-service >"$MD/source"
      return 0
    fi
    [ $rc -eq 143 ] && return 1          # timed out: nothing answers
    md_ec2 && return 0                   # answered, but not the OpenStack paths
    sleep 1                              # refused: the proxy may be starting
  done
}

md_fetch() {
  rm -rf "$MD"
  mkdir -p "$MD"
  md_config_drive || md_service || echo none >"$MD/source"
}
