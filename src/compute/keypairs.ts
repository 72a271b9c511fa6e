// Key pairs: public keys a user imports or has Stratus generate (the private key is returned
// once and never stored). Counted per user against the key_pairs quota.
import type { Kysely } from 'kysely';
import { badRequest, conflict, notFound } from '../core/errors.js';
import { isUniqueViolation } from '../core/db.js';
import { nowIso } from '../core/ids.js';
import { generateSshKey, sshFingerprint, x509Fingerprint, type KeyKind } from './sshkeys.js';
import type { QuotaService } from './quotas.js';

export interface Keypair {
  /** An integer, as Nova shows it. */
  id: number;
  userId: string;
  name: string;
  type: 'ssh' | 'x509';
  publicKey: string;
  fingerprint: string;
  createdAt: string;
  /** Only on the response that generated it. */
  privateKey?: string;
}

export interface KeypairCreate {
  userId: string;
  /** The project whose key_pairs limit applies (the caller's). */
  projectId: string;
  name: string;
  type?: string;
  publicKey?: string;
  /** Names allowed at microversion >= 2.92 also include '@' and '.'. */
  extendedNames?: boolean;
}

type Row = { id: number; user_id: string; name: string; type: string; public_key: string; fingerprint: string; created_at: string };

const toKeypair = (r: Row): Keypair => ({
  id: Number(r.id), userId: r.user_id, name: r.name, type: r.type as Keypair['type'], publicKey: r.public_key,
  fingerprint: r.fingerprint, createdAt: r.created_at,
});

export class KeypairService {
  constructor(private readonly db: Kysely<any>, private readonly quotas: QuotaService) {
    // key_pairs is a per-user count (as in Nova); project-wide views report no usage for it.
    quotas.addCounter(async (db, _projectId, scope) => {
      if (!scope.userId) return {};
      const r = await db.selectFrom('compute_keypairs').select((eb) => eb.fn.countAll().as('n'))
        .where('user_id', '=', scope.userId).executeTakeFirst();
      return { key_pairs: Number(r?.n ?? 0) };
    });
  }

  async list(userId: string, opts: { limit?: number; marker?: string } = {}): Promise<Keypair[]> {
    let q = this.db.selectFrom('compute_keypairs').selectAll().where('user_id', '=', userId);
    if (opts.marker !== undefined) {
      const m = await this.db.selectFrom('compute_keypairs').select('name').where('user_id', '=', userId)
        .where('name', '=', opts.marker).executeTakeFirst();
      if (!m) throw badRequest(`marker [${opts.marker}] not found`);
      q = q.where('name', '>', opts.marker);
    }
    q = q.orderBy('name');
    if (opts.limit !== undefined) q = q.limit(opts.limit);
    return ((await q.execute()) as Row[]).map(toKeypair);
  }

  async get(userId: string, name: string): Promise<Keypair> {
    const r = (await this.db.selectFrom('compute_keypairs').selectAll().where('user_id', '=', userId)
      .where('name', '=', name).executeTakeFirst()) as Row | undefined;
    if (!r) throw notFound(`Keypair ${name} not found for user ${userId}`);
    return toKeypair(r);
  }

  async create(input: KeypairCreate): Promise<Keypair> {
    const nameRe = input.extendedNames ? /^[a-zA-Z0-9 _\-@.]+$/ : /^[a-zA-Z0-9 _-]+$/;
    if (!input.name.trim() || input.name.length > 255 || !nameRe.test(input.name)) {
      throw badRequest(`Keypair data is invalid: Keypair name contains unsafe characters or is empty (allowed: letters, digits, space, '_', '-'${input.extendedNames ? ", '@', '.'" : ''}; 1-255).`);
    }
    // 'ssh' generates RSA as Nova does; 'ssh-ed25519' is Stratus' way to ask for an Ed25519 key.
    const type = input.type ?? 'ssh';
    if (!['ssh', 'x509', 'ssh-ed25519'].includes(type)) {
      throw badRequest(`Keypair data is invalid: type must be 'ssh' or 'x509' (or 'ssh-ed25519' to generate an Ed25519 key), not '${type}'.`);
    }
    let publicKey = input.publicKey;
    let privateKey: string | undefined;
    let fingerprint: string;
    if (publicKey !== undefined) {
      publicKey = publicKey.trim();
      fingerprint = type === 'x509' ? x509Fingerprint(publicKey) : sshFingerprint(publicKey);
    } else {
      if (type === 'x509') throw badRequest('Keypair data is invalid: Stratus does not generate x509 certificates; import one with public_key.');
      const kind: KeyKind = type === 'ssh-ed25519' ? 'ed25519' : 'rsa';
      const g = await generateSshKey(kind, `${input.name}@stratus`);
      publicKey = g.publicKey; privateKey = g.privateKey; fingerprint = g.fingerprint;
    }
    const row: Omit<Row, 'id'> = {
      user_id: input.userId, name: input.name, type: type === 'x509' ? 'x509' : 'ssh',
      public_key: publicKey, fingerprint, created_at: nowIso(),
    };
    let id = 0;
    try {
      await this.quotas.consume(input.projectId, { key_pairs: 1 }, async (tx) => {
        await tx.insertInto('compute_keypairs').values(row).execute();
        id = Number((await tx.selectFrom('compute_keypairs').select('id').where('user_id', '=', row.user_id)
          .where('name', '=', row.name).executeTakeFirstOrThrow()).id);
      }, { userId: input.userId });
    } catch (e) {
      if (isUniqueViolation(e)) throw conflict(`Key pair '${input.name}' already exists.`);
      throw e;
    }
    return { ...toKeypair({ ...row, id }), privateKey };
  }

  async delete(userId: string, name: string): Promise<void> {
    const r = await this.db.deleteFrom('compute_keypairs').where('user_id', '=', userId).where('name', '=', name)
      .executeTakeFirst();
    if (!Number(r.numDeletedRows)) throw notFound(`Keypair ${name} not found for user ${userId}`);
  }
}
