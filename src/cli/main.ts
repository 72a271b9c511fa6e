// The `stratus` command: up, down, status, admin. Other issues add agent, ssh, exec-external.
import { parseArgs } from 'node:util';
import { commands } from './commands.js';

const [name, ...rest] = process.argv.slice(2);
const cmd = name ? commands[name] : undefined;
if (!cmd) {
  console.log(usage());
  process.exit(name && name !== 'help' && name !== '--help' && name !== '-h' ? 2 : 0);
}
try {
  const { values, positionals } = parseArgs({ args: rest, options: cmd.options, allowPositionals: true, strict: true });
  const code = await cmd.run(values as Record<string, string | boolean | undefined>, positionals);
  if (typeof code === 'number') process.exitCode = code;
} catch (e) {
  console.error(`stratus ${name}: ${(e as Error).message}`);
  process.exit(2);
}

function usage(): string {
  const lines = ['usage: stratus COMMAND [options]', '', 'commands:'];
  for (const [n, c] of Object.entries(commands)) lines.push(`  ${n.padEnd(16)} ${c.summary}`);
  return lines.join('\n');
}
