// Stored credential blobs (EC2 secrets and any /v3/credentials blob) are sealed at rest, as
// Keystone encrypts credentials: AES-256-GCM (sealing.ts) under DATA_DIR/credential-keys/, a key
// repository kept like the token keys (directory 0700, files 0600), separate from them so that
// rotating token keys never touches stored secrets. A database dump alone reveals no secret.
import type { Kysely, Migration } from 'kysely';
import { ApiError } from '../core/errors.js';
import { KeyRing } from './keys.js';
import { seal, unseal } from './sealing.js';

const VERSION = 1;
/** Sealed blobs are text columns: a prefix, then base64url. */
const PREFIX = 'sealed1:';

export class CredentialBlobs {
  private readonly ring: KeyRing;

  constructor(dataDir: string) {
    this.ring = new KeyRing(dataDir, 500, 'credential-keys');
  }

  seal(blob: string): string {
    return PREFIX + seal(this.ring, VERSION, Buffer.from(blob, 'utf8')).toString('base64url');
  }

  isSealed(stored: string): boolean {
    return stored.startsWith(PREFIX);
  }

  /** The plaintext blob; a blob that does not open (its key is gone) is an operator problem, not the caller's. */
  open(stored: string): string {
    const plain = this.isSealed(stored) ? unseal(this.ring, VERSION, Buffer.from(stored.slice(PREFIX.length), 'base64url')) : undefined;
    if (!plain) throw new ApiError(500, 'A stored credential cannot be decrypted: is DATA_DIR/credential-keys intact?');
    return plain.toString('utf8');
  }

  /** A credential row with its blob opened. */
  openRow<T extends { blob: string }>(r: T): T {
    return { ...r, blob: this.open(r.blob) };
  }

  /** The migration that seals the blobs stored in clear before sealing existed. */
  migration(): Migration {
    return {
      up: async (db: Kysely<any>) => {
        const rows = await db.selectFrom('identity_credentials').select(['id', 'blob']).execute() as { id: string; blob: string }[];
        for (const r of rows) {
          if (this.isSealed(r.blob)) continue;
          await db.updateTable('identity_credentials').set({ blob: this.seal(r.blob) }).where('id', '=', r.id).execute();
        }
      },
    };
  }
}
