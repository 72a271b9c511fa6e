// The config drive: an ISO9660 image labelled `config-2` in the OpenStack layout
// (openstack/latest/meta_data.json, user_data, network_data.json), built as Nova does with genisoimage.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { ConfigDriveSpec } from '../driver.js';
import { run } from '../../exec.js';

export async function buildConfigDrive(spec: ConfigDriveSpec, dest: string): Promise<void> {
  const tmp = mkdtempSync(join(dirname(dest), '.configdrive-'));
  try {
    // The guest reads `latest`; a dated version too, as clients of old metadata formats look for it.
    for (const version of ['latest', '2012-08-10']) {
      const dir = join(tmp, 'openstack', version);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'meta_data.json'), JSON.stringify(spec.metaData));
      writeFileSync(join(dir, 'network_data.json'), JSON.stringify(spec.networkData ?? { links: [], networks: [], services: [] }));
      writeFileSync(join(dir, 'vendor_data.json'), JSON.stringify(spec.vendorData ?? {}));
      if (spec.userData !== undefined) writeFileSync(join(dir, 'user_data'), spec.userData);
    }
    const part = `${dest}.part`;
    await run('genisoimage', ['-o', part, '-ldots', '-allow-lowercase', '-allow-multidot', '-l',
      '-V', 'config-2', '-quiet', '-J', '-r', join(tmp)]);
    renameSync(part, dest);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
