import { execSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab, LocalCluster, type ClusterOptions, type LabNetwork, type LabOptions } from '@ferry/deploy';
import { createLogger } from '@ferry/runtime';

/** Why lab tests cannot run here, or null when they can. */
export function labUnsupported(): string | null {
  if (process.getuid?.() !== 0) return 'lab tests need root (network namespaces, runc, cgroups)';
  for (const tool of ['ip', 'nsenter', 'runc', 'criu', 'setpriv']) {
    try {
      execSync(`command -v ${tool}`, { stdio: 'ignore', shell: '/bin/sh' });
    } catch {
      return `lab tests need ${tool} (run deploy/setup)`;
    }
  }
  if (!existsSync('/opt/ferry/templates/busybox/template.json')) return 'lab tests need the busybox template (run deploy/setup)';
  return null;
}

/**
 * Whether to skip the lab tests: only outside CI, and saying why. In CI a missing prerequisite is
 * a failure, not a skip.
 */
export function skipLab(): boolean {
  const reason = labUnsupported();
  if (!reason) return false;
  if (process.env.CI) throw new Error(`lab tests cannot run in CI: ${reason}`);
  console.warn(`skipping lab tests: ${reason}`);
  return true;
}

export const PROD: LabNetwork = { name: 'prod', subnet: '10.77.0.0/24', bridge: 'fbr-prod' };

export interface LabCluster {
  lab: Lab;
  cluster: LocalCluster;
  stateDir: string;
  /** tears everything down; safe to call twice */
  close(): Promise<void>;
}

/** A lab of network-namespace hosts running real agents, with its own NATS, Redis, scheduler and API. */
export async function startLabCluster(
  hostIds: string[],
  networks: LabNetwork[] = [PROD],
  schedulerEnv: Record<string, string> = {},
  apiEnv: Record<string, string> = {},
  clusterOptions: Partial<ClusterOptions> = {},
  labOptions: Pick<LabOptions, 'quotaPools'> = {},
): Promise<LabCluster> {
  const stateDir = mkdtempSync(join(tmpdir(), 'ferry-lab-test-'));
  const log = createLogger('test-lab').child({}, { level: 'warn' });
  const lab = await Lab.create({ stateDir, hostIds, networks, reportIntervalMs: 500, log, ...labOptions });
  const cluster = new LocalCluster({ stateDir, lab, log, schedulerEnv, apiEnv, ...clusterOptions });
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await cluster.stop();
    await lab.destroy();
    // FERRY_KEEP_LOGS=1 keeps the services' logs of a lab test for a look afterwards.
    if (process.env.FERRY_KEEP_LOGS) console.warn(`lab logs kept in ${stateDir}/logs`);
    else rmSync(stateDir, { recursive: true, force: true });
  };
  try {
    await cluster.start();
    for (const id of hostIds) cluster.startAgent(id);
    await cluster.waitForHostsUp(hostIds, 30_000);
  } catch (err) {
    await close();
    throw err;
  }
  return { lab, cluster, stateDir, close };
}
