#!/usr/bin/env bash
# Run OpenStack's own API test suite (Tempest, Debian package `tempest`) against a throwaway
# Stratus on 127.0.0.1, then tear it down.
#
#   scripts/tempest.sh                          # tempest.api.network
#   scripts/tempest.sh 'tempest.api.identity'   # any regex of tempest API tests
#
# Environment: TEMPEST_PORT (default 18790), TEMPEST_CONCURRENCY (2), TEMPEST_NOVA=1 to declare
# compute available (boots guests: slow under TCG), TEMPEST_KEEP=1 to leave the cloud running,
# TEMPEST_RESULTS (directory for tempest.conf, tempest.log, the subunit stream and the failing
# list; default /tmp/stratus-tempest-<time>). Scenario tests (they need guests and SSH) are
# always excluded. Tempest only ever talks to 127.0.0.1: the script checks the config and the
# catalog before running anything.
set -euo pipefail

REGEX="${1:-tempest.api.network}"
PORT="${TEMPEST_PORT:-18790}"
CONC="${TEMPEST_CONCURRENCY:-2}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RESULTS="${TEMPEST_RESULTS:-/tmp/stratus-tempest-$(date -u +%Y%m%dT%H%M%S)}"

command -v tempest >/dev/null || { echo "tempest is not installed (apt-get install -y tempest)" >&2; exit 2; }
case "$REGEX" in *scenario*) echo "refusing to run scenario tests (they need guests)" >&2; exit 2;; esac

TMP="$(mktemp -d /tmp/stratus-tempest-cloud.XXXXXX)"
mkdir -p "$RESULTS"
cleanup() {
  if [ "${TEMPEST_KEEP:-0}" = 1 ]; then
    echo "cloud left running: $ROOT/bin/stratus down --purge --data-dir $TMP"
  else
    [ -z "${WSNAME:-}" ] || tempest workspace remove --name "$WSNAME" >/dev/null 2>&1 || true
    "$ROOT/bin/stratus" down --purge --data-dir "$TMP" >/dev/null 2>&1 || true
    rm -rf "$TMP"
  fi
}
trap cleanup EXIT
trap "exit 130" INT TERM

cd "$ROOT"
npx tsc -p tsconfig.json 2>&1 | grep -v 'nodedir' || true
# Its own namespaces: never the default "stratus-" of a cloud a user runs on this machine.
tag="tp$(basename "$TMP" | tr -dc 'a-zA-Z0-9' | tr 'A-Z' 'a-z' | tail -c 6)"
export STRATUS_NETNS_PREFIX="stratus-$tag-" STRATUS_PROVIDER_NETNS="stratus-$tag-provider"
./bin/stratus up --data-dir "$TMP" --listen "127.0.0.1:$PORT" --detach >"$RESULTS/stratus-up.log" 2>&1 \
  || { cat "$RESULTS/stratus-up.log" >&2; exit 1; }

# Generate tempest.conf from what the cloud really offers.
WS="$TMP/tempest"
WSNAME="stratus-$(basename "$TMP")"
tempest init --name "$WSNAME" "$WS" >/dev/null
python3 - "$TMP/clouds.yaml" "$PORT" "$WS/etc" "${TEMPEST_NOVA:-0}" <<'PY'
import json, sys, urllib.request, urllib.error, yaml, uuid
clouds, port, etc, want_nova = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == '1'
conf_path = etc + '/tempest.conf'
base = f'http://127.0.0.1:{port}'
cl = yaml.safe_load(open(clouds))['clouds']
a, demo = cl['stratus']['auth'], cl['stratus-demo']['auth']
assert a['auth_url'].startswith(base + '/'), f"auth_url {a['auth_url']} is not on {base}"

def call(method, url, body=None, token=None):
    req = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body is not None else None)
    req.add_header('Content-Type', 'application/json')
    if token: req.add_header('X-Auth-Token', token)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            data = r.read()
            return r.status, (json.loads(data) if data else None), r.headers
    except urllib.error.HTTPError as e:
        return e.code, None, e.headers

st, body, hdr = call('POST', a['auth_url'] + '/auth/tokens', {'auth': {
    'identity': {'methods': ['password'], 'password': {'user': {'name': a['username'], 'password': a['password'],
                                                                 'domain': {'name': a['user_domain_name']}}}},
    'scope': {'project': {'name': a['project_name'], 'domain': {'name': a['project_domain_name']}}}}})
assert st == 201, f'admin token: HTTP {st}'
tok = hdr['X-Subject-Token']
catalog = {s['type']: s for s in body['token']['catalog']}
for s in catalog.values():
    for e in s['endpoints']:
        assert e['url'].startswith(base), f"catalog endpoint {e['url']} is not on {base}: refusing to run"
def url(t):
    return next(e['url'] for e in catalog[t]['endpoints'] if e['interface'] == 'public')

net = url('network').rstrip('/')
exts = sorted(e['alias'] for e in call('GET', net + '/v2.0/extensions', token=tok)[1]['extensions'])
pub = call('GET', net + '/v2.0/networks?name=public', token=tok)[1]['networks']
assert pub, 'no network named public'
# Dynamic credentials need project + user creation and role assignment: probe it.
ident = a['auth_url']
name = 'tempest-probe-' + uuid.uuid4().hex[:8]
st, p, _ = call('POST', ident + '/projects', {'project': {'name': name, 'domain_id': 'default'}}, tok)
dynamic = st == 201
if dynamic:
    call('DELETE', ident + '/projects/' + p['project']['id'], token=tok)
else:
    # Identity cannot create projects: preprovisioned accounts (admin + demo). Tests that
    # need an "alt" project are skipped by tempest; one primary account means concurrency 1.
    accts = [{'username': c['username'], 'password': c['password'], 'project_name': c['project_name'],
              'domain_name': c['user_domain_name'], 'roles': r} for c, r in ((a, ['admin']), (demo, ['member']))]
    yaml.safe_dump(accts, open(etc + '/accounts.yaml', 'w'))
    print(f'identity refuses POST /v3/projects (HTTP {st}): using preprovisioned accounts admin and demo')

# Compute: the bootstrap test image and the two smallest flavors (tiny guests boot fastest).
compute = ''
if want_nova and 'compute' in catalog:
    img = call('GET', url('image').rstrip('/') + '/v2/images?name=stratus-test', token=tok)[1]['images']
    assert img, 'no image named stratus-test'
    flv = {f['name']: f['id'] for f in call('GET', url('compute').rstrip('/') + '/flavors', token=tok)[1]['flavors']}
    # The all-in-one host's agent registers a moment after start: tests that list hosts need it.
    import time
    for _ in range(120):
        hv = call('GET', url('compute').rstrip('/') + '/os-hypervisors', token=tok)[1]['hypervisors']
        if any(h.get('state') == 'up' and h.get('status') == 'enabled' for h in hv): break
        time.sleep(1)
    else:
        raise SystemExit('no compute host came up within 120 s')
    compute = (f"image_ref = {img[0]['id']}\nimage_ref_alt = {img[0]['id']}\n"
               f"flavor_ref = {flv['m1.nano']}\nflavor_ref_alt = {flv['m1.micro']}\n")

avail = {'neutron': 'network' in catalog, 'glance': 'image' in catalog, 'nova': want_nova and 'compute' in catalog,
         'placement': 'placement' in catalog, 'cinder': False, 'swift': False, 'heat': False,
         'horizon': False, 'ceilometer': False, 'aodh': False, 'designate': False}
b = lambda v: 'true' if v else 'false'
conf = f"""[DEFAULT]
log_file = tempest.log
use_stderr = false

[auth]
use_dynamic_credentials = {b(dynamic)}
test_accounts_file = {etc}/accounts.yaml
create_isolated_networks = true
admin_username = {a['username']}
admin_password = {a['password']}
admin_project_name = {a['project_name']}
admin_domain_name = {a['user_domain_name']}
default_credentials_domain_name = Default
tempest_roles = member

[identity]
uri_v3 = {ident}
auth_version = v3
region = RegionOne
v3_endpoint_type = public
disable_ssl_certificate_validation = true

[identity-feature-enabled]
api_v2 = false
api_v3 = true
trust = false
security_compliance = false
project_tags = false
application_credentials = false
access_rules = false

[service_available]
""" + ''.join(f'{k} = {b(v)}\n' for k, v in avail.items()) + f"""
[network]
public_network_id = {pub[0]['id']}
floating_network_name = public
project_network_cidr = 10.100.0.0/16
project_network_mask_bits = 28
project_network_v6_cidr = 2001:db8::/48
project_network_v6_mask_bits = 64
project_networks_reachable = false
region = RegionOne
endpoint_type = publicURL

[network-feature-enabled]
api_extensions = {','.join(exts)}
ipv6 = true
ipv6_subnet_attributes = true
port_security = {b('port-security' in exts)}

[validation]
run_validation = false

[compute]
region = RegionOne
{compute}min_compute_nodes = 1
max_microversion = latest
build_timeout = 900

# What Stratus' compute really does (docs/compute.md); a test of a feature marked false is skipped.
[compute-feature-enabled]
resize = true
pause = true
suspend = true
snapshot = true
console_output = true
interface_attach = {b('network' in catalog)}
config_drive = true
metadata_service = true
# Cold and live migration need two hosts: with the one all-in-one host tempest skips those tests.
cold_migration = true
live_migration = true
vnc_console = true
# Not (yet) supported: OS-DCF:diskConfig AUTO, adminPass, shelve, rescue, serial/SPICE consoles,
# file injection, volumes.
disk_config = false
change_password = false
enable_instance_password = false
shelve = false
shelve_migrate = false
rescue = false
serial_console = false
spice_console = false
personality = false
attach_encrypted_volume = false

[image]
region = RegionOne

[placement]
region = RegionOne

[oslo_concurrency]
lock_path = {etc}/../tempest_lock
"""
open(conf_path, 'w').write(conf)
open(etc + '/dynamic', 'w').write(b(dynamic))
print(f'tempest.conf: dynamic credentials {b(dynamic)}; services ' +
      ', '.join(k for k, v in avail.items() if v) + f'; {len(exts)} network extensions')
PY

# Belt and braces: every URL in the config must be loopback.
if grep -Eo 'https?://[^ /]+' "$WS/etc/tempest.conf" | grep -v "^http://127.0.0.1:$PORT$"; then
  echo "tempest.conf names a non-loopback URL: refusing to run" >&2; exit 1
fi
cp "$WS/etc/tempest.conf" "$RESULTS/tempest.conf"

cd "$WS"
# Preprovisioned credentials: only one primary account, so tests cannot run in parallel.
[ "$(cat "$WS/etc/dynamic")" = true ] || CONC=1
set +e
tempest run --regex "$REGEX" --exclude-regex 'tempest\.scenario' --concurrency "$CONC" >"$RESULTS/run.log" 2>&1
rc=$?
set -e
stestr last --subunit >"$RESULTS/results.subunit" 2>/dev/null || true
stestr failing --list >"$RESULTS/failing.txt" 2>/dev/null || true
cp -f tempest.log "$RESULTS/" 2>/dev/null || true
sed -n '/^======$/,$p' "$RESULTS/run.log" | tail -n 12
echo "failing tests: $(grep -c . "$RESULTS/failing.txt" || true) (list in $RESULTS/failing.txt; details in $RESULTS/run.log)"
exit $rc
