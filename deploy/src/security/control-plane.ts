import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { NatsIdentity } from '@ferry/protocol';
import type { NatsClientSettings } from '@ferry/runtime';
import { ensureClusterCa, issueServerCertificate, type CertificatePair } from './ca.ts';
import { NatsIdentityStore } from './identities.ts';
import type { NatsUser } from './nats-config.ts';

/**
 * A control plane's secrets in one directory (0700): the cluster CA, the NATS server's
 * certificate, and the NATS identities admitted so far. What an embedded cluster (`npm start`,
 * the lab, tests) runs with — there is no insecure mode to fall back to.
 */
export class ControlPlaneSecrets {
  private readonly store: NatsIdentityStore;
  private readonly users = new Map<string, NatsUser>();

  private constructor(
    readonly dir: string,
    readonly ca: CertificatePair,
    readonly natsTls: CertificatePair,
  ) {
    this.store = new NatsIdentityStore(join(dir, 'nats-identities'));
  }

  /** Creates (or reuses) the CA and a NATS server certificate valid for these addresses. */
  static async create(dir: string, natsAddresses: string[]): Promise<ControlPlaneSecrets> {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
    const ca = await ensureClusterCa(dir);
    const ips = [...new Set(['127.0.0.1', ...natsAddresses])];
    const natsTls = await issueServerCertificate(ca, dir, 'nats-server', { ips, dns: ['localhost'] });
    return new ControlPlaneSecrets(dir, ca, natsTls);
  }

  /** Admits an identity (idempotent); true when it is new (the NATS server must reload to know it). */
  admit(identity: NatsIdentity): boolean {
    if (this.users.has(identity.name)) return false;
    this.users.set(identity.name, this.store.ensure(identity));
    return true;
  }

  /** Revokes an identity: gone from the next NATS configuration. */
  revoke(name: string): boolean {
    return this.users.delete(name);
  }

  admitted(): NatsUser[] {
    return [...this.users.values()];
  }

  has(name: string): boolean {
    return this.users.has(name);
  }

  /** How an admitted identity connects (for processes of this machine, and for tests). */
  clientSettings(name: string, url: string): NatsClientSettings {
    if (!this.users.has(name)) throw new Error(`NATS identity ${name} is not admitted`);
    return { url, identity: name, seedFile: this.store.seedFile(name), caFile: this.ca.cert };
  }

  /** The same as environment variables of a Ferry service (paths only: no secret in the environment). */
  clientEnv(name: string, url: string): Record<string, string> {
    const s = this.clientSettings(name, url);
    return { FERRY_NATS_URL: s.url, FERRY_NATS_IDENTITY: s.identity, FERRY_NATS_SEED_FILE: s.seedFile, FERRY_NATS_CA_FILE: s.caFile };
  }
}
