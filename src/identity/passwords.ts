// Password and secret hashing: argon2id, 64 MiB, 3 passes (RFC 9106's second recommended
// setting) — memory-hard, and costlier to attack than Keystone's default bcrypt (cost 12, 4 KiB).
//
// Verifying such a hash takes ~50 ms of a core. To serve repeated logins of the same user fast,
// a successful verification is remembered for a few minutes as an HMAC (key random per process,
// never stored) over the stored hash and the password: only the right password of the current
// hash hits it; a wrong guess always pays the full argon2id cost, so online guessing is not
// cheaper, and nothing weaker than the argon2id hash is ever written anywhere.
import { Algorithm, hash, verify } from '@node-rs/argon2';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const PARAMS = { algorithm: Algorithm.Argon2id, memoryCost: 65536, timeCost: 3, parallelism: 1 } as const;
const CACHE_TTL_MS = 5 * 60_000;
const CACHE_MAX = 10_000;

const hmacKey = randomBytes(32);
const verified = new Map<string, { mac: Buffer; until: number }>();

export function hashPassword(password: string): Promise<string> {
  return hash(password, PARAMS);
}

// A fixed hash to verify against when the user does not exist, so that the answer takes as long.
let dummyHash: Promise<string> | undefined;

function mac(stored: string, password: string): Buffer {
  return createHmac('sha256', hmacKey).update(stored).update('\0').update(password).digest();
}

/** True when `password` matches `stored` (an argon2 hash); `stored` undefined burns the same time. */
export async function verifyPassword(stored: string | null | undefined, password: string): Promise<boolean> {
  if (!stored) {
    dummyHash ??= hashPassword(randomBytes(16).toString('hex'));
    await verify(await dummyHash, password).catch(() => false);
    return false;
  }
  const m = mac(stored, password);
  const hit = verified.get(stored);
  if (hit && hit.until > Date.now() && timingSafeEqual(hit.mac, m)) return true;
  let ok = false;
  try { ok = await verify(stored, password); } catch { ok = false; }
  if (ok) {
    if (verified.size >= CACHE_MAX) verified.delete(verified.keys().next().value!);
    verified.set(stored, { mac: m, until: Date.now() + CACHE_TTL_MS });
  }
  return ok;
}
