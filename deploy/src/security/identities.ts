import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { nkeys } from 'nats';
import { NatsIdentity } from '@ferry/protocol';
import type { NatsUser } from './nats-config.ts';

/**
 * The cluster's NATS identities: one NKey pair each, the seed in <dir>/<name>.nk (0600, the
 * directory 0700), the public key and role in <name>.json. Adding one never changes another.
 */
export class NatsIdentityStore {
  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
  }

  seedFile(name: string): string {
    return join(this.dir, `${name}.nk`);
  }

  /** The identity's user (creating its key pair the first time). */
  ensure(identity: NatsIdentity): NatsUser {
    const parsed = NatsIdentity.parse(identity);
    const meta = join(this.dir, `${parsed.name}.json`);
    if (existsSync(meta)) {
      const known = JSON.parse(readFileSync(meta, 'utf8')) as { identity: NatsIdentity; publicKey: string };
      if (known.identity.role !== parsed.role || known.identity.hostId !== parsed.hostId) {
        throw new Error(`NATS identity ${parsed.name} exists with another role or host`);
      }
      return { identity: known.identity, publicKey: known.publicKey };
    }
    const pair = nkeys.createUser();
    // the seed first, private from its first byte: the public half is worthless without it
    writeFileSync(this.seedFile(parsed.name), `${new TextDecoder().decode(pair.getSeed())}\n`, { mode: 0o600, flag: 'wx' });
    const user = { identity: parsed, publicKey: pair.getPublicKey() };
    writeFileSync(meta, `${JSON.stringify(user)}\n`, { mode: 0o600 });
    return user;
  }
}
