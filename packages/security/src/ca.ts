import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';

/**
 * The cluster's certificate authority and the certificates it signs, made with the openssl CLI
 * (Node can parse X.509 certificates but not create them). Private keys are EC P-256, written by
 * openssl itself with mode 0600, and only ever named by path: never in an argument, a log or an
 * environment variable.
 */
export interface CertificatePair {
  cert: string;
  key: string;
}

/** a positive 127-bit serial (the top bit clear keeps it positive in DER) */
const serial = () => {
  const bytes = randomBytes(16);
  bytes[0]! &= 0x7f;
  return `0x${bytes.toString('hex')}`;
};

async function openssl(args: string[]): Promise<void> {
  await execa('openssl', args, { stdin: 'ignore' });
}

async function newKey(path: string): Promise<void> {
  await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', path]);
}

/** Creates the cluster CA in dir (ca.crt, ca.key) unless it exists. */
export async function ensureClusterCa(dir: string, name = 'Ferry cluster CA'): Promise<CertificatePair> {
  const pair = { cert: join(dir, 'ca.crt'), key: join(dir, 'ca.key') };
  if (existsSync(pair.cert) && existsSync(pair.key)) return pair;
  if (!/^[A-Za-z0-9 ._-]{1,64}$/.test(name)) throw new Error(`not a CA name: ${name}`);
  // a config file of its own: nothing depends on the system's openssl.cnf
  const cnf = join(dir, 'ca.cnf');
  writeFileSync(
    cnf,
    [
      '[req]',
      'distinguished_name = dn',
      'x509_extensions = v3_ca',
      'prompt = no',
      '[dn]',
      `CN = ${name}`,
      '[v3_ca]',
      'basicConstraints = critical,CA:TRUE,pathlen:0',
      'keyUsage = critical,keyCertSign,cRLSign',
      'subjectKeyIdentifier = hash',
      'authorityKeyIdentifier = keyid:always',
      '',
    ].join('\n'),
  );
  await newKey(pair.key);
  await openssl(['req', '-x509', '-new', '-config', cnf, '-key', pair.key, '-sha256', '-days', '3650', '-set_serial', serial(), '-out', pair.cert]);
  return pair;
}

export type CertificateUsage = 'serverAuth' | 'clientAuth';

export interface CertificateNames {
  /** subjectAltName IP addresses */
  ips: string[];
  /** subjectAltName DNS names */
  dns: string[];
}

function checkNames(names: CertificateNames): void {
  for (const ip of names.ips) if (!/^[0-9.]+$|^[0-9a-f:]+$/i.test(ip)) throw new Error(`not an IP address: ${ip}`);
  for (const dns of names.dns) if (!/^[a-z0-9.-]{1,253}$/i.test(dns)) throw new Error(`not a DNS name: ${dns}`);
}

function extensions(names: CertificateNames, usages: CertificateUsage[]): string {
  const san = [...names.ips.map((ip) => `IP:${ip}`), ...names.dns.map((d) => `DNS:${d}`)].join(',');
  return [
    'basicConstraints = critical,CA:FALSE',
    'keyUsage = critical,digitalSignature',
    `extendedKeyUsage = ${usages.join(',')}`,
    ...(san ? [`subjectAltName = ${san}`] : []),
    'subjectKeyIdentifier = hash',
    'authorityKeyIdentifier = keyid',
    '',
  ].join('\n');
}

const CERT_NAME = /^[a-z0-9-]{1,63}$/;

/**
 * A certificate signed by the CA, with a new key made here: `<dir>/<name>.crt` and `.key` (0600).
 * Servers get serverAuth, NATS clients clientAuth (the NATS server verifies both ends).
 */
export async function issueCertificate(ca: CertificatePair, dir: string, name: string, names: CertificateNames, usages: CertificateUsage[]): Promise<CertificatePair> {
  if (!CERT_NAME.test(name)) throw new Error(`not a certificate name: ${name}`);
  checkNames(names);
  const pair = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, extensions(names, usages));
  await newKey(pair.key);
  await openssl(['req', '-new', '-key', pair.key, '-subj', `/CN=${name}`, '-out', csr]);
  await openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', serial(), '-days', '825', '-sha256', '-extfile', ext, '-out', pair.cert]);
  rmSync(csr, { force: true });
  rmSync(ext, { force: true });
  return pair;
}

/** A server certificate signed by the CA for these names and addresses (subjectAltName). */
export const issueServerCertificate = (ca: CertificatePair, dir: string, name: string, names: CertificateNames): Promise<CertificatePair> => issueCertificate(ca, dir, name, names, ['serverAuth']);

/**
 * A key pair and a certificate signing request made where the key stays (a joining host): the
 * key written by openssl at 0600 in `<dir>/<name>.key`; only the request (public) is returned.
 */
export async function makeKeyAndRequest(dir: string, name: string): Promise<{ key: string; csrPem: string }> {
  if (!CERT_NAME.test(name)) throw new Error(`not a certificate name: ${name}`);
  const key = join(dir, `${name}.key`);
  await newKey(key);
  const { stdout } = await execa('openssl', ['req', '-new', '-key', key, '-subj', `/CN=${name}`], { stdin: 'ignore' });
  return { key, csrPem: `${stdout.trim()}\n` };
}

const CSR_PEM = /^-----BEGIN CERTIFICATE REQUEST-----\n[A-Za-z0-9+/=\n]{100,8000}\n-----END CERTIFICATE REQUEST-----\n?$/;

/**
 * Signs a request from elsewhere (a joining host's). Only its public key is taken from it: the
 * subject (`CN=<commonName>`), the names and the usages are the control plane's, whatever the
 * request asked for. A request that is not one, or whose self-signature fails, is refused.
 */
export async function signCertificateRequest(ca: CertificatePair, csrPem: string, commonName: string, names: CertificateNames, usages: CertificateUsage[]): Promise<string> {
  if (!CERT_NAME.test(commonName)) throw new Error(`not a certificate name: ${commonName}`);
  if (!CSR_PEM.test(csrPem)) throw new Error('not a PEM certificate signing request');
  checkNames(names);
  const work = mkdtempSync(join(tmpdir(), 'ferry-csr-'));
  try {
    const csr = join(work, 'request.csr');
    const ext = join(work, 'request.ext');
    writeFileSync(csr, csrPem);
    writeFileSync(ext, extensions(names, usages));
    await execa('openssl', ['req', '-in', csr, '-noout', '-verify'], { stdin: 'ignore' }).catch(() => {
      throw new Error('the certificate signing request does not verify');
    });
    const { stdout } = await execa(
      'openssl',
      ['x509', '-req', '-in', csr, '-subj', `/CN=${commonName}`, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', serial(), '-days', '825', '-sha256', '-extfile', ext],
      { stdin: 'ignore' },
    );
    return `${stdout.trim()}\n`;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * What pins a CA: `sha256:` and the base64url SHA-256 of its DER certificate. A join token carries
 * it, so a joining host trusts the control plane it reaches only if it holds that very CA
 * (kubeadm's discovery-token-ca-cert-hash).
 */
export function certificatePin(pem: string): string {
  return `sha256:${createHash('sha256').update(new X509Certificate(pem).raw).digest('base64url')}`;
}
