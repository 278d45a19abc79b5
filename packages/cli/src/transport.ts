import { request } from 'node:https';

/** What the client reads of an answer: the same whether fetch or node:https carried it. */
export interface HttpAnswer {
  status: number;
  statusText: string;
  ok: boolean;
  text(): Promise<string>;
  body: AsyncIterable<Uint8Array> | null;
}

export interface HttpRequest {
  method: string;
  headers: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
  /** trust this CA (PEM) for an https URL: the cluster's (node's fetch cannot be given one) */
  ca?: string;
}

/**
 * One request to the API. With a CA (an API over HTTPS with the cluster CA's certificate) it goes
 * through node:https, which verifies against that CA; otherwise through fetch.
 */
export async function send(url: string, init: HttpRequest): Promise<HttpAnswer> {
  if (!init.ca || !url.startsWith('https:')) {
    const res = await fetch(url, { method: init.method, headers: init.headers, ...(init.body === undefined ? {} : { body: init.body }), ...(init.signal ? { signal: init.signal } : {}) });
    return { status: res.status, statusText: res.statusText, ok: res.ok, text: () => res.text(), body: res.body as AsyncIterable<Uint8Array> | null };
  }
  return new Promise((resolve, reject) => {
    const req = request(url, { method: init.method, headers: init.headers, ca: init.ca, ...(init.signal ? { signal: init.signal } : {}) }, (res) => {
      const status = res.statusCode ?? 0;
      resolve({
        status,
        statusText: res.statusMessage ?? '',
        ok: status >= 200 && status < 300,
        body: res,
        async text() {
          const chunks: Buffer[] = [];
          for await (const chunk of res) chunks.push(chunk as Buffer);
          return Buffer.concat(chunks).toString('utf8');
        },
      });
    });
    req.on('error', (err) => reject(Object.assign(new Error(err.message), { cause: err.message })));
    req.end(init.body);
  });
}
