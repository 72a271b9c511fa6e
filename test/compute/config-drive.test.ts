// config_drive=true on a guest with a NIC (one real guest): the agent attaches the config drive
// although the guest could read the metadata service, the guest takes its metadata from the drive,
// and the drive's network_data.json describes the server's port (the same document the metadata
// service serves).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { TEST_IMAGE, testAgent, until, type TestAgent } from '../helpers/agent.js';
import { consoleOf } from '../helpers/guests.js';
import { parseGuestMarkers } from '../../src/agent/guest-image/markers.js';

let tc: TestCloud;
let agent: TestAgent | undefined;
const haveImage = existsSync(TEST_IMAGE);

before(async () => {
  if (!haveImage) return;
  tc = await startTestCloud({ image: { bootstrapImage: TEST_IMAGE } } as never);
  agent = testAgent(tc);
  await agent.start();
  await until('network agent', () => agent!.log().includes('network agent registered'), 60_000);
});
after(async () => {
  try {
    await agent?.cleanup();
  } finally {
    await tc?.stop();
  }
});

test('config_drive=true with a NIC: the guest reads the drive, whose network_data.json is the port', { skip: !haveImage && `${TEST_IMAGE} missing`, timeout: 600_000 }, async () => {
  await tc.openstackJson(['network', 'create', 'cd-net']);
  await tc.openstackJson(['subnet', 'create', '--network', 'cd-net', '--subnet-range', '10.78.0.0/24', 'cd-sub']);
  // User data prints the drive's network_data.json on the console.
  const ud = join(tc.dataDir, 'ud.sh');
  writeFileSync(ud, '#!/bin/sh\nmkdir -p /mnt/cd && mount -o ro "$(findfs LABEL=config-2)" /mnt/cd\n'
    + 'echo "NETDATA $(cat /mnt/cd/openstack/latest/network_data.json)"\numount /mnt/cd\n');
  const s = await tc.openstackJson(['server', 'create', '--image', 'stratus-test', '--flavor', 'm1.nano', '--network', 'cd-net',
    '--config-drive', 'True', '--user-data', ud, '--wait', 'cd-1']);
  assert.equal(s.status, 'ACTIVE');
  assert.equal((await tc.openstackJson(['server', 'show', 'cd-1'])).config_drive, 'True');
  const port = (await tc.openstackJson(['port', 'list', '--server', s.id]))[0];
  const ip: string = port['Fixed IP Addresses'][0].ip_address;
  const mac: string = port['MAC Address'];

  const m = await until('user data ran', () => { const g = parseGuestMarkers(consoleOf(tc.dataDir, s.id)); return g.userdataRc !== undefined ? g : null; }, 300_000);
  assert.equal(m.metadataSource, 'config-drive', 'metadata came from the drive although the guest has a NIC');
  assert.equal(m.nets[0]?.ip, `${ip}/24`, 'the NIC still took its lease');
  assert.equal(m.userdataRc, 0);
  const line = /NETDATA (\{.*\})/.exec(consoleOf(tc.dataDir, s.id));
  assert.ok(line, 'network_data.json printed by the guest');
  const nd = JSON.parse(line[1]!);
  assert.equal(nd.links[0].ethernet_mac_address, mac);
  assert.equal(nd.links[0].vif_id, port.ID);
  assert.equal(nd.networks[0].ip_address, ip);
  assert.equal(nd.networks[0].type, 'ipv4_dhcp');

  const del = await tc.openstack(['server', 'delete', '--wait', 'cd-1']);
  assert.equal(del.code, 0, del.stderr);
});
