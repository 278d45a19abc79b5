import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { JoinTokenCreated, JoinTokenListResponse } from '@ferry/protocol';
import { answerMessage, readSecretFile, requestJson } from '@ferry/runtime';
import { ControlFile } from './init.ts';

/** How ferry-admin reaches this machine's API: control.json (from init), the bootstrap token, the CA. */
export function controlApi(configFile: string): { apiUrl: string; token: string; ca: string } {
  let control: ControlFile;
  try {
    control = ControlFile.parse(JSON.parse(readFileSync(configFile, 'utf8')));
  } catch (err) {
    throw new Error(`cannot read ${configFile} (written by ferry-admin init): ${(err as Error).message}`);
  }
  return { apiUrl: control.apiUrl, token: readSecretFile(join(control.controlDir, 'api-token'), 'API token'), ca: readFileSync(control.caFile, 'utf8') };
}

/** Parses 90s, 15m, 1h, 7d (or plain seconds). */
export function parseDuration(text: string): number {
  const match = /^(\d+)([smhd]?)$/.exec(text.trim());
  if (!match) throw new Error(`not a duration: ${text} (e.g. 30m, 1h, 2d)`);
  return Number(match[1]) * { '': 1, s: 1, m: 60, h: 3600, d: 86_400 }[match[2] as '' | 's' | 'm' | 'h' | 'd'];
}

export async function createJoinToken(configFile: string, ttlSeconds: number): Promise<{ command: string; created: JoinTokenCreated }> {
  const api = controlApi(configFile);
  const answer = await requestJson({ method: 'POST', url: `${api.apiUrl}/v1/join-tokens`, token: api.token, ca: api.ca, body: { ttlSeconds } });
  if (answer.status !== 201) throw new Error(`the API refused to make a join token: ${answerMessage(answer)}`);
  const created = JoinTokenCreated.parse(answer.body);
  return { command: `ferry-agent join ${api.apiUrl} ${created.token}`, created };
}

/** Every join token, oldest first: all the API's pages (it pages lists in id order). */
export async function listJoinTokens(configFile: string): Promise<JoinTokenListResponse> {
  const api = controlApi(configFile);
  const joinTokens: JoinTokenListResponse['joinTokens'] = [];
  let cursor: string | null = null;
  do {
    const query: string = `limit=1000${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`;
    const answer = await requestJson({ method: 'GET', url: `${api.apiUrl}/v1/join-tokens?${query}`, token: api.token, ca: api.ca });
    if (answer.status !== 200) throw new Error(`cannot list join tokens: ${answerMessage(answer)}`);
    const page = JoinTokenListResponse.parse(answer.body);
    joinTokens.push(...page.joinTokens);
    cursor = page.nextCursor;
  } while (cursor !== null);
  joinTokens.sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1));
  return { joinTokens, nextCursor: null };
}

export async function revokeJoinToken(configFile: string, id: string): Promise<void> {
  const api = controlApi(configFile);
  const answer = await requestJson({ method: 'DELETE', url: `${api.apiUrl}/v1/join-tokens/${encodeURIComponent(id)}`, token: api.token, ca: api.ca });
  if (answer.status !== 200) throw new Error(`cannot revoke join token ${id}: ${answerMessage(answer)}`);
}
