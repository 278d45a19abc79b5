import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NatsIdentity } from '@ferry/protocol';
import type { NatsClientSettings } from '@ferry/runtime';
import { ensureClusterCa, issueCertificate, issueServerCertificate, signCertificateRequest, type CertificateNames, type CertificatePair } from './ca.ts';
import { NatsIdentityStore } from './identities.ts';
import { NATS_ROUTE_SUBJECT, renderNatsAuthorization, renderNatsServerConfig, type NatsUser } from './nats-config.ts';

/** a nats-server's name in the control plane's directory: `nats` (the single server), `nats-1`, `nats-2`, … (a cluster's nodes) */
const NATS_NODE = /^nats(-[a-z0-9]{1,16})?$/;
const NATS_PID_FILE = /^(nats(?:-[a-z0-9]{1,16})?)\.pid$/;

/** One nats-server's own files: its configuration, its pid file (what a reload signals) and its log (where a reload shows). */
export const natsNodePaths = (dir: string, node = 'nats') => {
  if (!NATS_NODE.test(node)) throw new Error(`not a NATS node name: ${node} (nats, or nats-<letters and digits>)`);
  return { config: join(dir, `${node}.conf`), pid: join(dir, `${node}.pid`), log: join(dir, `${node}.log`) };
};

/** the name of the route certificate's subject (CN): only NATS nodes get a certificate of it */
const ROUTE_CERT_NAME = NATS_ROUTE_SUBJECT.replace(/^CN=/, '');

export interface NatsNodeOptions {
  /** the node's name (its files: <node>.conf, .pid, .log); default `nats`, the single server */
  node?: string;
  /**
   * a node of a cluster: the port it takes routes on (on the same host as its clients' port
   * unless clusterHost), the other nodes' route addresses (host:port), and the cluster's name
   * (default `ferry`). Needs the route certificate (issueRouteCertificate).
   */
  clusterPort?: number;
  clusterHost?: string;
  routes?: string[];
  clusterName?: string;
  /** the server's name in the cluster (`server_name`, unique per node); default the node name */
  serverName?: string;
  /**
   * write the configuration here instead of `<node>.conf`: another machine's, to be copied there
   * (its pid, log and certificate paths are this directory's: the same layout on every machine)
   */
  file?: string;
}

/** Where a control plane keeps what it owns, all in one directory (0700). */
export const controlPlanePaths = (dir: string) => ({
  dir,
  ca: { cert: join(dir, 'ca.crt'), key: join(dir, 'ca.key') },
  natsServer: { cert: join(dir, 'nats-server.crt'), key: join(dir, 'nats-server.key') },
  /** the certificate NATS nodes route with (serverAuth and clientAuth, CN=nats-route): a cluster's only */
  natsRoute: { cert: join(dir, `${ROUTE_CERT_NAME}.crt`), key: join(dir, `${ROUTE_CERT_NAME}.key`) },
  apiServer: { cert: join(dir, 'api-server.crt'), key: join(dir, 'api-server.key') },
  identities: join(dir, 'nats-identities'),
  /** the single server's files (a cluster's nodes: natsNodePaths(dir, 'nats-1'), …) */
  natsConfig: join(dir, 'nats.conf'),
  /** the admitted identities: one file, included by every node's configuration */
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
   * The certificate the nodes of a NATS cluster route with: serverAuth *and* clientAuth (a node
   * is the TLS client of the routes it dials and the TLS server of those dialled to it), for every
   * node's route address, subject `CN=nats-route` — which the nodes require of a route
   * (verify_and_map), so the client certificates of the same CA cannot open a route.
   */
  issueRouteCertificate(names: CertificateNames): Promise<CertificatePair> {
    return issueCertificate(this.ca, this.dir, ROUTE_CERT_NAME, { ips: [...new Set(['127.0.0.1', ...names.ips])], dns: names.dns }, ['serverAuth', 'clientAuth']);
  }

  /**
   * Admits an identity of this machine (idempotent): its NKey seed and a NATS client certificate
   * made here. True when it is new (nats-server must reload to know it).
   */
  async admit(identity: NatsIdentity): Promise<boolean> {
    reserved(identity.name);
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
    reserved(identity.name);
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

  /**
   * A nats-server's configuration for this address, with the identities admitted now: the single
   * server's (`nats.conf`, `nats.pid`, `nats.log`), or with `node` and `clusterPort` one node of a
   * cluster (`<node>.conf`, `.pid`, `.log`, its routes). Every node includes the same
   * authorization file. Returns the configuration file.
   */
  writeNatsConfig(host: string, port: number, options: NatsNodeOptions = {}): string {
    const { paths } = this;
    const node = natsNodePaths(this.dir, options.node);
    const clustered = options.clusterPort !== undefined;
    if (clustered && !existsSync(paths.natsRoute.cert)) throw new Error('a NATS cluster node needs the route certificate: issueRouteCertificate first');
    if (!clustered && options.routes?.length) throw new Error('routes without a clusterPort');
    const text = renderNatsServerConfig({
      host,
      port,
      tls: { ...paths.natsServer, ca: paths.ca.cert },
      authorizationFile: paths.natsAuthorization,
      pidFile: node.pid,
      logFile: node.log,
      ...(clustered
        ? {
            serverName: options.serverName ?? options.node ?? 'nats',
            cluster: {
              name: options.clusterName ?? 'ferry',
              host: options.clusterHost ?? host,
              port: options.clusterPort!,
              routes: options.routes ?? [],
              tls: { ...paths.natsRoute, ca: paths.ca.cert },
            },
          }
        : {}),
    });
    const file = options.file ?? node.config;
    writeAtomically(file, text);
    this.writeNatsAuthorization();
    return file;
  }

  private writeNatsAuthorization(): void {
    writeAtomically(this.paths.natsAuthorization, renderNatsAuthorization(this.admitted()));
  }

  /**
   * Changes the admitted identities and has every running nats-server of this directory take the
   * change: one process at a time (a lock directory), the authorization file rewritten from what
   * is admitted then, each server signalled (SIGHUP, its pid file: `nats.pid`, and a cluster's
   * `nats-<n>.pid`) and its log read until it reports the reload. A server that is not running is
   * skipped (it reads the file when it starts); without any, the files are only rewritten.
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
    for (const deadline = Date.now() + 2 * STALE_LOCK_MS; ;) {
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

  /** the nats-servers of this directory, by their pid files */
  natsNodes(): string[] {
    return readdirSync(this.dir)
      .map((f) => NATS_PID_FILE.exec(f)?.[1])
      .filter((n): n is string => n !== undefined)
      .sort();
  }

  private async reloadNats(): Promise<void> {
    const results = await Promise.allSettled(this.natsNodes().map((node) => reloadNode(natsNodePaths(this.dir, node))));
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed.length > 0) throw failed.length === 1 ? failed[0]!.reason : new Error(failed.map((f) => (f.reason as Error).message).join('; '));
  }
}

function reserved(name: string): void {
  if (name === ROUTE_CERT_NAME || name === 'nats-server') throw new Error(`${name} is reserved for NATS servers: not an identity name`);
}

async function reloadNode(node: { pid: string; log: string }): Promise<void> {
  const { pid: natsPid, log: natsLog } = node;
  const pid = existsSync(natsPid) ? Number(readFileSync(natsPid, 'utf8').trim()) : NaN;
  if (!Number.isInteger(pid) || pid <= 0 || !alive(pid) || !isNatsServer(pid)) return;
  const offset = existsSync(natsLog) ? statSync(natsLog).size : 0;
  process.kill(pid, 'SIGHUP');
  for (const deadline = Date.now() + 5_000; Date.now() < deadline;) {
    const news = readFrom(natsLog, offset);
    if (/Failed to reload/.test(news)) throw new Error(`nats-server refused its new configuration; see ${natsLog}`);
    if (/Reloaded server configuration/.test(news)) return;
    await sleep(20);
  }
  throw new Error(`nats-server did not reload its configuration; see ${natsLog}`);
}

/**
 * A pid file outlives a server killed with SIGKILL: its pid may be another process' by now. Only
 * a process that is alive is asked; one whose name cannot be read (no procfs, or hidden by
 * ProtectProc) is trusted to be what its pid file says.
 */
function isNatsServer(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'nats-server';
  } catch {
    return true;
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
