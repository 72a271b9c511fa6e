// Firewall text applied to a namespace only when needed: the text last applied and what the
// kernel showed right after are remembered (applied.json in the state dir), so an unchanged
// converge does not rewrite rules, while rules changed behind our back are restored.
import { readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { runIn, type ChangeLog } from './exec.js';

type Applied = Record<string, { want: string; seen: string }>;
const sha = (s: string) => createHash('sha256').update(s).digest('hex');
/** iptables-save output without comments and counters. */
const normalizeSave = (s: string) => s.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.replace(/ \[\d+:\d+\]$/, '')).join('\n');

export class AppliedTables {
  constructor(private readonly stateDir: string) {}

  /** iptables-restore / ip6tables-restore input (whole tables) for a namespace. */
  iptables(key: string, ns: string, tool: 'iptables' | 'ip6tables', text: string, log: ChangeLog): Promise<void> {
    return this.apply(key, text, async () => sha(normalizeSave(await runIn(ns, `${tool}-save`, []))),
      () => log.change('ip', ['netns', 'exec', ns, `${tool}-restore`], text));
  }

  /** nft input (which replaces one table) for a namespace. */
  nft(key: string, ns: string, family: string, table: string, text: string, log: ChangeLog): Promise<void> {
    return this.apply(key, text, async () => sha(await runIn(ns, 'nft', ['list', 'table', family, table]).catch(() => '')),
      () => log.change('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], text));
  }

  /** Forgets every key but these (routers gone). */
  keepOnly(keys: Set<string>): void {
    const a = this.load();
    if (Object.keys(a).some((k) => !keys.has(k))) this.save(Object.fromEntries(Object.entries(a).filter(([k]) => keys.has(k))));
  }

  private async apply(key: string, text: string, seen: () => Promise<string>, restore: () => Promise<unknown>): Promise<void> {
    const applied = this.load();
    const want = sha(text);
    if (applied[key]?.want === want && applied[key]?.seen === (await seen())) return;
    await restore();
    applied[key] = { want, seen: await seen() };
    this.save(applied);
  }
  private load(): Applied {
    try { return JSON.parse(readFileSync(join(this.stateDir, 'applied.json'), 'utf8')); } catch { return {}; }
  }
  private save(a: Applied): void {
    writeFileSync(join(this.stateDir, 'applied.json'), JSON.stringify(a));
  }
}
