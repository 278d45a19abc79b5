import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { connect, nkeyAuthenticator, nkeys, type NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { subjects, type StatsResponse } from '@ferry/protocol';
import { encodeJson } from '@ferry/runtime';
import { eventually, startTestCluster, type TestCluster } from './helpers/cluster.ts';
import { refusedConnect } from './helpers/nats.ts';

/** What the server said no to on one connection: "publish <subject>" / "subscription <subject>". */
function refusals(nc: NatsConnection): string[] {
  const seen: string[] = [];
  void (async () => {
    for await (const s of nc.status()) {
      const context = (s as { permissionContext?: { operation: string; subject: string } }).permissionContext;
      if (s.data === 'PERMISSIONS_VIOLATION' && context) seen.push(`${context.operation} ${context.subject}`);
    }
  })();
  return seen;
}

describe('NATS: TLS only, one NKey identity per process, least privilege', () => {
  let t: TestCluster;
  const open: NatsConnection[] = [];
  const as = async (identity: string) => {
    const nc = await t.cluster.connectNats(identity);
    open.push(nc);
    return { nc, refused: refusals(nc) };
  };

  beforeAll(async () => {
    t = await startTestCluster({ hostIds: ['h1', 'h2', 'h3'] });
  });

  afterAll(async () => {
    for (const nc of open) await nc.close().catch(() => undefined);
    await t?.close();
  });

  const tls = () => ({ caFile: t.cluster.secrets.clientSettings('observer', t.cluster.natsUrl).caFile });
  /** a client certificate of the cluster CA (the observer's), without its NKey */
  const certTls = () => {
    const s = t.cluster.secrets.clientSettings('observer', t.cluster.natsUrl);
    return { caFile: s.caFile, certFile: s.certFile, keyFile: s.keyFile };
  };

  it('refuses anonymous, plain-text and unknown clients', async () => {
    // no credentials at all: no client certificate, refused in the TLS handshake
    expect(await refusedConnect({ servers: t.cluster.natsUrl, tls: tls() })).toMatch(/CERTIFICATE|ECONNRESET|handshake/i);
    // a certificate of the cluster but no NKey
    expect(await refusedConnect({ servers: t.cluster.natsUrl, tls: certTls() })).toBe('AUTHORIZATION_VIOLATION');
    // a well-formed NKey the cluster never admitted (a made-up host)
    const stranger = nkeys.createUser().getSeed();
    expect(await refusedConnect({ servers: t.cluster.natsUrl, tls: certTls(), authenticator: nkeyAuthenticator(stranger) })).toBe('AUTHORIZATION_VIOLATION');
    // an admitted NKey without a client certificate (a stolen seed alone is not enough)
    const h1Seed = t.cluster.secrets.clientSettings('agent-h1', t.cluster.natsUrl).seedFile;
    const { readSeed: seedOf } = await import('@ferry/runtime');
    expect(await refusedConnect({ servers: t.cluster.natsUrl, tls: tls(), authenticator: nkeyAuthenticator(seedOf(h1Seed)) })).toMatch(/CERTIFICATE|ECONNRESET|handshake/i);
    // an admitted identity that does not check the server against the cluster CA
    const seedFile = t.cluster.secrets.clientSettings('agent-h1', t.cluster.natsUrl).seedFile;
    const { readSeed } = await import('@ferry/runtime');
    expect(await refusedConnect({ servers: t.cluster.natsUrl, authenticator: nkeyAuthenticator(readSeed(seedFile)), tls: {} })).not.toBe('connected');
  });

  it('does not let a host speak for another: no forged capacity, no forged lease acknowledgements', async () => {
    const before = await t.cluster.get<StatsResponse>('/v1/stats');
    const h1 = await as('agent-h1');
    h1.nc.publish(subjects.capacity('h2'), encodeJson({ v: 1, hostId: 'h2' }));
    h1.nc.publish(subjects.lease('h2'), encodeJson({ seq: 1, leaseMs: 3_600_000 }));
    h1.nc.publish(subjects.lease('h1'), encodeJson({ seq: 1, leaseMs: 3_600_000 })); // not even its own
    await h1.nc.flush();
    await eventually('the refusals', async () => h1.refused.length >= 3);
    expect(h1.refused).toEqual(expect.arrayContaining([`publish ${subjects.capacity('h2')}`, `publish ${subjects.lease('h2')}`, `publish ${subjects.lease('h1')}`]));
    // the scheduler never saw the forged report (not even as a rejected one)
    const after = await t.cluster.get<StatsResponse>('/v1/stats');
    expect(Object.values(after.capacityReports.rejected).reduce((a, b) => a + b, 0)).toBe(Object.values(before.capacityReports.rejected).reduce((a, b) => a + b, 0));
    expect((await t.cluster.get<{ hosts: Array<{ id: string }> }>('/v1/hosts')).hosts.map((h) => h.id)).not.toContain('h2');
  });

  it('does not let a host command agents, or hear commands and replies meant for others (migration secrets)', async () => {
    const h2 = await as('agent-h2');
    h2.nc.publish(subjects.agentCommand('h1', 'container.destroy'), encodeJson({ id: 'anything', keepRootfs: false }));
    h2.nc.publish(subjects.agentCommand('h2', 'container.stop'), encodeJson({ id: 'anything' }));
    await h2.nc.flush();
    for (const subject of ['ferry.agent.h1.>', 'ferry.agent.>', '_INBOX_scheduler.>', '_INBOX.>', '>']) {
      const sub = h2.nc.subscribe(subject);
      void (async () => {
        for await (const _ of sub) void _;
      })().catch(() => undefined);
    }
    await h2.nc.flush();
    await eventually('every refusal', async () => h2.refused.length >= 7, 5000);
    expect(h2.refused).toEqual(
      expect.arrayContaining([
        `publish ${subjects.agentCommand('h1', 'container.destroy')}`,
        `publish ${subjects.agentCommand('h2', 'container.stop')}`,
        'subscription ferry.agent.h1.>',
        'subscription ferry.agent.>',
        'subscription _INBOX_scheduler.>',
        'subscription _INBOX.>',
        'subscription >',
      ]),
    );
  });

  it('lets the API and observers read events and nothing else', async () => {
    const observer = await as('observer');
    observer.nc.publish(subjects.agentCommand('h1', 'container.stop'), encodeJson({ id: 'x' }));
    observer.nc.publish(subjects.hostEvents, encodeJson({ forged: true }));
    const capacity = observer.nc.subscribe(subjects.capacityAll);
    void (async () => {
      for await (const _ of capacity) void _;
    })().catch(() => undefined);
    await observer.nc.flush();
    await eventually('the refusals', async () => observer.refused.length >= 3);
    expect(observer.refused).toEqual(expect.arrayContaining([`publish ${subjects.agentCommand('h1', 'container.stop')}`, `publish ${subjects.hostEvents}`, `subscription ${subjects.capacityAll}`]));
  });

  it("closes a revoked host's connection at once, and its credentials stop working", async () => {
    const { natsConnectOptions } = await import('@ferry/runtime');
    const settings = t.cluster.secrets.clientSettings('agent-h3', t.cluster.natsUrl);
    // its credentials as the host holds them (revocation removes the control plane's copies)
    const kept = mkdtempSync(join(tmpdir(), 'ferry-revoked-'));
    const copy = (file: string) => {
      const to = join(kept, basename(file));
      copyFileSync(file, to);
      return to;
    };
    const old = { ...settings, seedFile: copy(settings.seedFile), certFile: copy(settings.certFile), keyFile: copy(settings.keyFile) };
    const h3 = await connect({ ...natsConnectOptions(old), reconnect: false });
    await t.cluster.revokeHost('h3');
    await eventually('the old connection closed', async () => h3.isClosed(), 10_000);
    expect(await refusedConnect(natsConnectOptions(old))).toBe('AUTHORIZATION_VIOLATION');
    rmSync(kept, { recursive: true, force: true });
  });
});
