import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
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

/** A server certificate signed by the CA for these names and addresses (subjectAltName). */
export async function issueServerCertificate(
  ca: CertificatePair,
  dir: string,
  name: string,
  altNames: { ips: string[]; dns: string[] },
): Promise<CertificatePair> {
  if (!/^[a-z0-9-]{1,63}$/.test(name)) throw new Error(`not a certificate name: ${name}`);
  for (const ip of altNames.ips) if (!/^[0-9.]+$|^[0-9a-f:]+$/i.test(ip)) throw new Error(`not an IP address: ${ip}`);
  for (const dns of altNames.dns) if (!/^[a-z0-9.-]{1,253}$/i.test(dns)) throw new Error(`not a DNS name: ${dns}`);
  const pair = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  const san = [...altNames.ips.map((ip) => `IP:${ip}`), ...altNames.dns.map((d) => `DNS:${d}`)].join(',');
  writeFileSync(
    ext,
    [
      'basicConstraints = critical,CA:FALSE',
      'keyUsage = critical,digitalSignature',
      'extendedKeyUsage = serverAuth',
      `subjectAltName = ${san}`,
      'subjectKeyIdentifier = hash',
      'authorityKeyIdentifier = keyid',
      '',
    ].join('\n'),
  );
  await newKey(pair.key);
  await openssl(['req', '-new', '-key', pair.key, '-subj', `/CN=${name}`, '-out', csr]);
  await openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', serial(), '-days', '825', '-sha256', '-extfile', ext, '-out', pair.cert]);
  return pair;
}
