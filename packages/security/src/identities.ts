import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { nkeys } from 'nats';
import { z } from 'zod';
import { NatsIdentity } from '@ferry/protocol';
import type { NatsUser } from './nats-config.ts';

const NKEY_USER = /^U[A-Z2-7]{55}$/;

const Admitted = z.object({ identity: NatsIdentity, publicKey: z.string().regex(NKEY_USER) });

/**
 * The cluster's admitted NATS identities, one directory (0700): `<name>.json` (role and public
 * key) for each admitted identity — its presence *is* the admission, so every process of the
 * control plane (the lab, `ferry-admin`, the API admitting a joining host) sees the same set.
 * Identities made here (the control plane's own) also keep their NKey seed in `<name>.nk` and
 * their NATS client certificate in `<name>.crt`/`.key`, all 0600; a joining host made its seed and
 * key itself and only its public halves are here. Adding one never changes another.
 */
export class NatsIdentityStore {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
  }

  seedFile(name: string): string {
    return join(this.dir, `${NatsIdentity.shape.name.parse(name)}.nk`);
  }

  private metaFile(name: string): string {
    return join(this.dir, `${NatsIdentity.shape.name.parse(name)}.json`);
  }

  get(name: string): NatsUser | null {
    const file = this.metaFile(name);
    if (!existsSync(file)) return null;
    return Admitted.parse(JSON.parse(readFileSync(file, 'utf8')));
  }

  /** Admits an identity made here (creating its key pair the first time). */
  ensure(identity: NatsIdentity): { user: NatsUser; created: boolean } {
    const parsed = NatsIdentity.parse(identity);
    const known = this.get(parsed.name);
    if (known) {
      if (known.identity.role !== parsed.role || known.identity.hostId !== parsed.hostId) {
        throw new Error(`NATS identity ${parsed.name} exists with another role or host`);
      }
      return { user: known, created: false };
    }
    const pair = nkeys.createUser();
    // the seed first, private from its first byte: the public half is worthless without it
    writeFileSync(this.seedFile(parsed.name), `${new TextDecoder().decode(pair.getSeed())}\n`, { mode: 0o600 });
    return { user: this.write({ identity: parsed, publicKey: pair.getPublicKey() }), created: true };
  }

  /** Admits an identity whose seed is elsewhere (a joining host): only its public key is known. */
  register(identity: NatsIdentity, publicKey: string): NatsUser {
    if (!NKEY_USER.test(publicKey)) throw new Error('not an NKey user public key');
    const parsed = NatsIdentity.parse(identity);
    if (this.get(parsed.name)) throw new Error(`NATS identity ${parsed.name} is admitted already`);
    return this.write({ identity: parsed, publicKey });
  }

  private write(user: NatsUser): NatsUser {
    writeFileSync(this.metaFile(user.identity.name), `${JSON.stringify(user)}\n`, { mode: 0o600 });
    return user;
  }

  /** Takes an identity away with everything kept of it; false when it was not admitted. */
  revoke(name: string): boolean {
    const admitted = this.get(name) !== null;
    for (const ext of ['json', 'nk', 'crt', 'key']) rmSync(join(this.dir, `${NatsIdentity.shape.name.parse(name)}.${ext}`), { force: true });
    return admitted;
  }

  /** Every admitted identity, in name order. */
  list(): NatsUser[] {
    return readdirSync(this.dir)
      .filter((f) => f.endsWith('.json'))
      .sort()
      .map((f) => Admitted.parse(JSON.parse(readFileSync(join(this.dir, f), 'utf8'))));
  }
}
