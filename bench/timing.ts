// Shared by the benches: run an operation n times at a given concurrency and report latency
// percentiles, throughput and this process's CPU time per operation (the figure that survives a
// busy machine; on SQLite it includes the database).
export interface Timing { n: number; p50: number; p95: number; max: number; perSec: number; cpuMsPerOp: number }

export const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2; };

/** Runs `fn` n times, `concurrency` at a time: latency percentiles, throughput, CPU of this process per op. */
export async function timed(n: number, fn: (i: number) => Promise<void>, concurrency = 1): Promise<Timing> {
  const lat: number[] = [];
  let next = 0;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) {
      const i = next++;
      const s = performance.now();
      await fn(i);
      lat.push(performance.now() - s);
    }
  }));
  const secs = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(c0);
  lat.sort((a, b) => a - b);
  const q = (x: number) => lat[Math.min(lat.length - 1, Math.floor(x * lat.length))]!;
  return { n, p50: q(0.5), p95: q(0.95), max: lat[lat.length - 1]!, perSec: n / secs, cpuMsPerOp: (cpu.user + cpu.system) / 1000 / n };
}

