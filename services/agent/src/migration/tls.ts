import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';

/**
 * The one-time secret of a migration's page stream: a throwaway key and self-signed certificate
 * (EC P-256, valid one day). Both ends hold both and trust only that certificate, so CRIU's page
 * server and lazy-pages client (`--tls`) talk only to the other end of this migration.
 */
export interface MigrationTls {
  certPem: string;
  keyPem: string;
}

const files = (dir: string) => ({ cert: join(dir, 'tls-cert.pem'), key: join(dir, 'tls-key.pem') });

export async function createMigrationTls(dir: string): Promise<MigrationTls> {
  const { cert, key } = files(dir);
  await execa('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=ferry-migration', '-keyout', key, '-out', cert], {
    timeout: 30_000,
  });
  await chmod(key, 0o600);
  return { certPem: await readFile(cert, 'utf8'), keyPem: await readFile(key, 'utf8') };
}

export async function writeMigrationTls(dir: string, tls: MigrationTls): Promise<void> {
  const { cert, key } = files(dir);
  await writeFile(cert, tls.certPem, { mode: 0o600 });
  await writeFile(key, tls.keyPem, { mode: 0o600 });
}

/** CRIU command-line options for a TLS page stream with the migration's certificate. */
export function criuTlsArgs(dir: string): string[] {
  const { cert, key } = files(dir);
  return ['--tls', '--tls-cacert', cert, '--tls-cert', cert, '--tls-key', key, '--tls-no-cn-verify'];
}

/** The same as lines of a CRIU configuration file (for checkpoints that runc starts). */
export function criuTlsConfig(dir: string): string {
  const { cert, key } = files(dir);
  return `tls\ntls-cacert ${cert}\ntls-cert ${cert}\ntls-key ${key}\ntls-no-cn-verify\n`;
}
