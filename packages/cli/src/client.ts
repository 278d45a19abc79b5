import { EXIT, CliError } from './errors.ts';
import type { Target } from './config.ts';
import { send, type HttpAnswer } from './transport.ts';

interface ErrorBody {
  code?: string;
  message?: string;
  details?: unknown;
}

/** the largest page the API serves (MAX_PAGE_LIMIT) */
const MAX_PAGE = 1000;

export interface PageRequest {
  /** one page of at most this many; absent: every page */
  limit?: number | undefined;
  /** start after this cursor (a previous page's nextCursor) */
  cursor?: string | undefined;
}

export interface ListAnswer<T> {
  items: T[];
  /** where the next page starts; null after the last (always null when every page was read) */
  nextCursor: string | null;
}

/** The API over HTTP; every failure becomes a CliError with an exit code and a next step. */
export class ApiClient {
  constructor(readonly target: Target) {}

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: HttpAnswer;
    try {
      res = await send(`${this.target.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.target.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(30_000),
        ...(this.target.ca ? { ca: this.target.ca } : {}),
      });
    } catch (err) {
      throw new CliError(
        `cannot reach the Ferry API at ${this.target.url} (${this.target.from}): ${(err as Error).cause ?? (err as Error).message}. Is it running? Check the URL with 'ferry context list'.`,
        EXIT.unreachable,
      );
    }
    const text = await res.text();
    const json = text ? (JSON.parse(text) as unknown) : null;
    if (res.ok) return json as T;
    const error = (json ?? {}) as ErrorBody;
    const message = error.message ?? `${res.status} ${res.statusText}`;
    if (res.status === 401)
      throw new CliError(`the API refused the token (${this.target.from}): ${message}. Set the right one with 'ferry context set NAME --url URL --token TOKEN'.`, EXIT.unreachable);
    if (res.status === 403) throw new CliError(`the API refused: ${message}. Ask an admin for a token with that role ('ferry tokens create NAME --role ROLE').`, EXIT.unreachable);
    if (res.status === 404) throw new CliError(`${message}. List what exists with 'ferry hosts', 'ferry workloads', 'ferry migrations' or 'ferry plans'.`, EXIT.notFound);
    if (res.status === 400) {
      // a workload's problems (POST /v1/workloads): one line per field
      const problems = (error.details as { problems?: Array<{ field?: unknown; message?: unknown }> } | undefined)?.problems;
      if (Array.isArray(problems) && problems.length > 0) {
        throw new CliError(`the API rejected the request, ${problems.length} problem(s):\n${problems.map((p) => `  ${String(p.field)}: ${String(p.message)}`).join('\n')}`, EXIT.usage);
      }
      throw new CliError(`the API rejected the request: ${message}`, EXIT.usage);
    }
    if (res.status === 409) throw new CliError(`refused: ${message}`, EXIT.refused);
    throw new CliError(`the API failed (${res.status}): ${message}`, EXIT.failed);
  }

  get = <T>(path: string) => this.request<T>('GET', path);

  /**
   * A list route's records (`key` of each answer): every page, following `nextCursor` 1,000 at a
   * time, or the one page asked for when `page.limit` is given (from `page.cursor` if given).
   * Filters with no value are left out.
   */
  async list<T>(path: string, key: string, filters: Record<string, string | undefined> = {}, page: PageRequest = {}): Promise<ListAnswer<T>> {
    const items: T[] = [];
    let cursor = page.cursor;
    for (;;) {
      const params = new URLSearchParams();
      for (const [name, value] of Object.entries(filters)) if (value !== undefined) params.set(name, value);
      params.set('limit', String(page.limit ?? MAX_PAGE));
      if (cursor !== undefined) params.set('cursor', cursor);
      const answer = await this.get<Record<string, unknown>>(`${path}?${params.toString()}`);
      const got = answer?.[key];
      if (!Array.isArray(got)) throw new CliError(`the API answered ${path} without a ${key} list: is it a Ferry API of this version?`, EXIT.failed);
      items.push(...(got as T[]));
      // an API from before paging answers without nextCursor: that one answer is all of it
      const next = typeof answer.nextCursor === 'string' ? answer.nextCursor : null;
      if (page.limit !== undefined || next === null) return { items, nextCursor: next };
      cursor = next;
    }
  }

  /**
   * Cluster events as they happen (GET /v1/events, server-sent events). Ends when `signal`
   * aborts; a dropped stream ends it too (callers poll as well).
   */
  async *events(query: string, signal: AbortSignal, onOpen: () => void = () => undefined): AsyncGenerator<{ type: string; [key: string]: unknown }> {
    let res: HttpAnswer;
    try {
      res = await send(`${this.target.url}/v1/events${query ? `?${query}` : ''}`, {
        method: 'GET',
        headers: { authorization: `Bearer ${this.target.token}`, accept: 'text/event-stream' },
        signal,
        ...(this.target.ca ? { ca: this.target.ca } : {}),
      });
    } catch (err) {
      if (signal.aborted) return;
      throw new CliError(`cannot reach the Ferry API at ${this.target.url}: ${(err as Error).message}`, EXIT.unreachable);
    }
    if (!res.ok || !res.body) throw new CliError(`the event stream failed: ${res.status}`, res.status === 401 ? EXIT.unreachable : EXIT.failed);
    onOpen(); // the API subscribed before answering: from here on nothing is missed
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of res.body) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = block
            .split('\n')
            .filter((line) => line.startsWith('data: '))
            .map((line) => line.slice(6))
            .join('\n');
          if (data) yield JSON.parse(data) as { type: string };
        }
      }
    } catch (err) {
      if (!signal.aborted) throw err;
    }
  }
}
