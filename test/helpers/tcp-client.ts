import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { repoRoot, type Lab } from '@ferry/deploy';

/** What test/helpers/tcp-client.mjs prints when its stdin ends: how its one connection fared. */
export interface ClientSummary {
  ok: boolean;
  error: string | null;
  requests: number;
  first: number | null;
  last: number | null;
  maxGapMs: number;
}

/**
 * One TCP connection to a lab workload's counter, held open from inside a lab host and asked
 * `inc` every 20 ms until endTcpClient (test/helpers/tcp-client.mjs): what a user's open
 * connection sees across a migration or a rollback.
 */
export function startTcpClient(lab: Lab, fromHost: string, address: string, port = 7000): ResultPromise {
  const [command, args] = lab.inHost(fromHost, process.execPath, [join(repoRoot, 'test', 'helpers', 'tcp-client.mjs'), address, String(port)]);
  return execa(command, args, { stdin: 'pipe', reject: false });
}

/** Ends the client and reads its summary. */
export async function endTcpClient(client: ResultPromise): Promise<ClientSummary> {
  client.stdin!.end();
  const result = await client;
  return JSON.parse(String(result.stdout).trim().split('\n').pop()!) as ClientSummary;
}
