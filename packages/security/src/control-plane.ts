import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, renameSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NatsIdentity } from '@ferry/protocol';
import type { NatsClientSettings } from '@ferry/runtime';
import { ensureClusterCa, issueCertificate, issueServerCertificate, signCertificateRequest, type CertificateNames, type CertificatePair } from './ca.ts';
import { NatsIdentityStore } from './identities.ts';
import { renderNatsAuthorization, renderNatsServerConfig, type NatsUser } from './nats-config.ts';

/** Where a control plane keeps what it owns, all in one directory (0700). */
export const controlPlanePaths = (dir: string) => ({
  dir,
  ca: { cert: join(dir, 'ca.crt'), key: join(dir, 'ca.key') },
  natsServer: { cert: join(dir, 'nats-server.crt'), key: join(dir, 'nats-server.key') },
  apiServer: { cert: join(dir, 'api-server.crt'), key: join(dir, 'api-server.key') },
  identities: join(dir, 'nats-identities'),
  natsConfig: join(dir, 'nats.conf'),
  natsAuthorization: join(dir, 'nats-authorization.conf'),
  natsPid: join(dir, 'nats.pid'),
  natsLog: join(dir, 'nats.log'),
  redisPasswords: join(dir, 'redis'),
  redisConfig: join(dir, 'redis.conf'),
  /** the API's built-in admin token (FERRY_API_TOKEN_FILE), 0600 */
  apiToken: join(dir, 'api-token'),
  /** serialises changes of the admitted identities between processes */
  lock: join(dir, '.identities.lock'),
});
export type ControlPlanePaths = ReturnType<typeof controlPlanePaths>;

/** how long a lock may be held before another process takes it over (its holder died) */
const STALE_LOCK_MS = 30_000;

/**
 * A control plane's secrets in one directory (0700): the cluster CA, the NATS server's
 * certificate, the admitted NATS identities and the files nats-server runs with. What the lab,
 * `npm start` and tests run with, and what `ferry-admin init` sets up on a real control plane;
 * the API opens the same directory to admit a joining host and to revoke a removed one. There is
 * no insecure mode to fall back to.
 */
export class ControlPlaneSecrets {
  readonly paths: ControlPlanePaths;
  private readonly store: NatsIdentityStore;

  private constructor(readonly dir: string) {
    this.paths = controlPlanePaths(dir);
    this.store = new NatsIdentityStore(this.paths.identities);
  }

  get ca(): CertificatePair {
    return this.paths.ca;
  }

  get natsTls(): CertificatePair {
    return this.paths.natsServer;
  }

  /** Creates (or reuses) the CA and issues a NATS server certificate valid for these addresses. */
  static async create(dir: string, natsAddresses: string[]): Promise<ControlPlaneSecrets> {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
    await ensureClusterCa(dir);
    const secrets = new ControlPlaneSecrets(dir);
    const ips = [...new Set(['127.0.0.1', ...natsAddresses])];
    await issueServerCertificate(secrets.ca, dir, 'nats-server', { ips, dns: ['localhost'] });
    return secrets;
  }

  /** Opens a control plane made before (by `create`): the API's way in. */
  static open(dir: string): ControlPlaneSecrets {
    const paths = controlPlanePaths(dir);
    if (!existsSync(paths.ca.cert) || !existsSync(paths.ca.key)) throw new Error(`${dir} holds no control plane (no cluster CA): run ferry-admin init`);
    return new ControlPlaneSecrets(dir);
  }

  /** A server certificate of the cluster CA (the API's, on a real control plane). */
  issueServerCertificate(name: string, names: CertificateNames): Promise<CertificatePair> {
    return issueServerCertificate(this.ca, this.dir, name, names);
  }

  /**
   * Admits an identity of this machine (idempotent): its NKey seed and a NATS client certificate
   * made here. True when it is new (nats-server must reload to know it).
   */
  async admit(identity: NatsIdentity): Promise<boolean> {
    const { created } = this.store.ensure(identity);
    const cert = join(this.paths.identities, `${identity.name}.crt`);
    if (created || !existsSync(cert)) await issueCertificate(this.ca, this.paths.identities, identity.name, { ips: [], dns: [] }, ['clientAuth']);
    return created;
  }

  /**
   * Admits a joining host's identity: its public NKey, and its certificate request signed for
   * `CN=<identity name>`, usable as its NATS client certificate and as a server certificate for
   * its management address. Returns the certificate. Refused when the name is admitted already.
   */
  async admitRemote(identity: NatsIdentity, publicKey: string, csrPem: string, names: CertificateNames): Promise<string> {
    if (this.store.get(identity.name)) throw new Error(`NATS identity ${identity.name} is admitted already`);
    const certPem = await signCertificateRequest(this.ca, csrPem, identity.name, names, ['clientAuth', 'serverAuth']);
    this.store.register(identity, publicKey);
    return certPem;
  }

  /** Revokes an identity: gone from the next NATS authorization. */
  revoke(name: string): boolean {
    return this.store.revoke(name);
  }

  admitted(): NatsUser[] {
    return this.store.list();
  }

  has(name: string): boolean {
    return this.store.get(name) !== null;
  }

  /** How an identity of this machine connects (its processes, and tests). */
  clientSettings(name: string, url: string): NatsClientSettings {
    if (!this.has(name)) throw new Error(`NATS identity ${name} is not admitted`);
    const base = join(this.paths.identities, name);
    return { url, identity: name, seedFile: this.store.seedFile(name), caFile: this.ca.cert, certFile: `${base}.crt`, keyFile: `${base}.key` };
  }

  /** The same as environment variables of a Ferry service (paths only: no secret in the environment). */
  clientEnv(name: string, url: string): Record<string, string> {
    const s = this.clientSettings(name, url);
    return {
      FERRY_NATS_URL: s.url,
      FERRY_NATS_IDENTITY: s.identity,
      FERRY_NATS_SEED_FILE: s.seedFile,
      FERRY_NATS_CA_FILE: s.caFile,
      FERRY_NATS_CERT_FILE: s.certFile,
      FERRY_NATS_KEY_FILE: s.keyFile,
    };
  }

  /** nats-server's configuration for this address, with the identities admitted now. */
  writeNatsConfig(host: string, port: number): string {
    const { paths } = this;
    const text = renderNatsServerConfig({
      host,
      port,
      tls: { ...paths.natsServer, ca: paths.ca.cert },
      authorizationFile: paths.natsAuthorization,
      pidFile: paths.natsPid,
      logFile: paths.natsLog,
    });
    writeAtomically(paths.natsConfig, text);
    this.writeNatsAuthorization();
    return paths.natsConfig;
  }

  private writeNatsAuthorization(): void {
    writeAtomically(this.paths.natsAuthorization, renderNatsAuthorization(this.admitted()));
  }

  /**
   * Changes the admitted identities and has a running nats-server take the change: one process
   * at a time (a lock directory), the authorization file rewritten from what is admitted then,
   * nats-server signalled (SIGHUP, its pid file) and its log read until it reports the reload.
   * Without a running server the files are only rewritten.
   */
  async changeIdentities<T>(change: () => Promise<T> | T): Promise<T> {
    await this.lock();
    try {
      const result = await change();
      this.writeNatsAuthorization();
      await this.reloadNats();
      return result;
    } finally {
      rmdirSync(this.paths.lock);
    }
  }

  private async lock(): Promise<void> {
    for (const deadline = Date.now() + 2 * STALE_LOCK_MS; ; ) {
      try {
        mkdirSync(this.paths.lock, { mode: 0o700 });
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const age = Date.now() - (statSync(this.paths.lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
        if (age > STALE_LOCK_MS) rmdirSync(this.paths.lock, { recursive: false });
        if (Date.now() > deadline) throw new Error(`cannot lock ${this.paths.lock}`);
        await sleep(10);
      }
    }
  }

  private async reloadNats(): Promise<void> {
    const { natsPid, natsLog } = this.paths;
    const pid = existsSync(natsPid) ? Number(readFileSync(natsPid, 'utf8').trim()) : NaN;
    if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return;
    const offset = existsSync(natsLog) ? statSync(natsLog).size : 0;
    process.kill(pid, 'SIGHUP');
    for (const deadline = Date.now() + 5_000; Date.now() < deadline; ) {
      const news = readFrom(natsLog, offset);
      if (/Failed to reload/.test(news)) throw new Error(`nats-server refused its new configuration; see ${natsLog}`);
      if (/Reloaded server configuration/.test(news)) return;
      await sleep(20);
    }
    throw new Error(`nats-server did not reload its configuration; see ${natsLog}`);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // alive, another user's
  }
}

function readFrom(file: string, offset: number): string {
  if (!existsSync(file)) return '';
  const fd = openSync(file, 'r');
  try {
    const size = statSync(file).size;
    if (size <= offset) return '';
    const buffer = Buffer.alloc(Math.min(size - offset, 1 << 20));
    readSync(fd, buffer, 0, buffer.length, offset);
    return buffer.toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** written aside and renamed: a server never reads half a file */
function writeAtomically(file: string, text: string): void {
  writeFileSync(`${file}.tmp`, text, { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}
