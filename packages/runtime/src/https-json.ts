import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface JsonRequest {
  method: string;
  url: string;
  body?: unknown;
  /** bearer token */
  token?: string;
  /** trust only this CA (PEM) for https; undefined: the system's */
  ca?: string;
  /**
   * do not verify the server's certificate: only for fetching a public document whose content
   * the caller checks itself (the cluster CA, against the pin of a join token)
   */
  insecureSkipVerify?: boolean;
  timeoutMs?: number;
}

export interface JsonAnswer {
  status: number;
  body: unknown;
}

/**
 * One JSON request over HTTP(S) with node:http(s) — unlike fetch, it can trust a given CA (the
 * cluster's) without touching the process's defaults. Answers of any status are returned; only
 * transport failures throw.
 */
export function requestJson(req: JsonRequest): Promise<JsonAnswer> {
  const url = new URL(req.url);
  const payload = req.body === undefined ? undefined : Buffer.from(JSON.stringify(req.body));
  const headers: Record<string, string> = { accept: 'application/json' };
  if (payload) headers['content-type'] = 'application/json';
  if (req.token) headers.authorization = `Bearer ${req.token}`;
  const send = url.protocol === 'https:' ? httpsRequest : url.protocol === 'http:' ? httpRequest : null;
  if (!send) return Promise.reject(new Error(`${req.url}: not an http(s) URL`));
  return new Promise((resolve, reject) => {
    const r = send(
      url,
      {
        method: req.method,
        headers,
        timeout: req.timeoutMs ?? 15_000,
        ...(url.protocol === 'https:' ? { ca: req.ca, rejectUnauthorized: !req.insecureSkipVerify } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          try {
            body = text ? JSON.parse(text) : null;
          } catch {
            // not JSON: returned as text
          }
          resolve({ status: res.statusCode ?? 0, body });
        });
        res.on('error', reject);
      },
    );
    r.on('timeout', () => r.destroy(new Error(`${req.method} ${req.url}: no answer within ${req.timeoutMs ?? 15_000} ms`)));
    r.on('error', reject);
    r.end(payload);
  });
}

/** The message of an API error body, or the status. */
export const answerMessage = (answer: JsonAnswer): string => {
  const body = answer.body as { message?: unknown } | null;
  return typeof body?.message === 'string' ? `${answer.status}: ${body.message}` : `HTTP ${answer.status}`;
};
