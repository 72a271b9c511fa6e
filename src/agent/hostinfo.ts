// What the agent tells the controller about its host.
import { cpus, hostname, totalmem, freemem, loadavg } from 'node:os';
import { statfsSync } from 'node:fs';
import { run } from './exec.js';

export async function hostFacts(dataDir: string, binary = 'qemu-system-x86_64') {
  const fs = statfsSync(dataDir);
  const version = (await run(binary, ['--version']).catch(() => '')).split('\n')[0]?.replace(/^QEMU emulator version\s*/, '') ?? '';
  return {
    hostname: hostname(),
    vcpus: cpus().length,
    memoryMb: Math.floor(totalmem() / 1024 / 1024),
    diskGb: Math.floor((fs.blocks * fs.bsize) / 1024 ** 3),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    hypervisorVersion: version,
  };
}

export function hostLoad(): { load: number; freeMemoryMb: number } {
  return { load: loadavg()[0] ?? 0, freeMemoryMb: Math.floor(freemem() / 1024 / 1024) };
}
