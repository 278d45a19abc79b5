import { Option, type Command } from 'commander';
import { z } from 'zod';
import { AUDIT_ID_PATTERN, ROLES, TokenName, type AuditEntry, type AuditResponse, type Role, type TokenCreated, type TokenListResponse, type TokenRevoked, type TokenView } from '@ferry/protocol';
import { UsageError } from '../errors.ts';
import { print, time } from '../output.ts';
import type { Session } from '../session.ts';

const tokenName = (name: string): string => {
  const parsed = TokenName.safeParse(name);
  if (!parsed.success) throw new UsageError(`bad token name ${JSON.stringify(name)}: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  return parsed.data;
};

/** `ferry audit`'s table: one line per request. */
export const auditColumns = [
  { header: 'at', value: (e: AuditEntry) => time(e.at) },
  { header: 'who', value: (e: AuditEntry) => e.who },
  { header: 'role', value: (e: AuditEntry) => e.role ?? '—' },
  { header: 'request', value: (e: AuditEntry) => `${e.method} ${e.path}${e.query ? `?${e.query}` : ''}` },
  { header: 'status', value: (e: AuditEntry) => (e.error ? `${e.status} ${e.error}` : e.status) },
  { header: 'from', value: (e: AuditEntry) => e.remote },
];

/**
 * `ferry tokens create NAME --role R | list | revoke NAME` (admin) and `ferry audit` (operator,
 * admin): named API tokens and the audit log of every mutating request (docs/operations.md).
 */
export function accessCommands(program: Command, session: () => Session): void {
  const tokens = program.command('tokens').description('named API tokens and their roles (needs an admin token)');
  tokens
    .command('list', { isDefault: true })
    .description('every token: name, role, created, last used (never the token itself)')
    .action(async () => {
      const s = session();
      // the bootstrap token first, then by name (the API's order)
      const items = (await s.api.list<TokenView>('/v1/tokens', 'tokens')).items.sort((a, b) => Number(b.builtIn) - Number(a.builtIn));
      const data: TokenListResponse = { tokens: items, nextCursor: null };
      print(s.format, data, data.tokens, [
        { header: 'name', value: (t) => t.name },
        { header: 'role', value: (t) => t.role },
        { header: 'created', value: (t) => (t.builtIn ? 'FERRY_API_TOKEN' : time(t.createdAt)) },
        { header: 'last used', value: (t) => time(t.lastUsedAt) },
      ]);
    });
  tokens
    .command('create <name>')
    .description('a new token with a role; prints it once: Ferry keeps only its hash')
    .addOption(
      new Option('--role <role>', 'viewer (read), operator (migrate, maintenance, rebalance, plans, start/stop, cancel) or admin (also create/destroy workloads, remove/admit hosts, tokens)')
        .choices(ROLES)
        .makeOptionMandatory(),
    )
    .action(async (name: string, options: { role: Role }) => {
      const body = { name: tokenName(name), role: options.role };
      const s = session();
      const created = await s.api.request<TokenCreated>('POST', '/v1/tokens', body);
      if (s.format === 'table') {
        // the token alone on stdout (TOKEN=$(ferry tokens create …)), the advice on stderr
        process.stderr.write(`token ${created.name} (${created.role}) created: it is shown only this once, store it now (ferry context set NAME --url URL --token TOKEN)\n`);
        process.stdout.write(`${created.token}\n`);
      } else print(s.format, created, [], []);
    });
  tokens
    .command('revoke <name>')
    .description('revoke a token: refused from its next request on')
    .action(async (name: string) => {
      const path = `/v1/tokens/${encodeURIComponent(tokenName(name))}`;
      const s = session();
      const data = await s.api.request<TokenRevoked>('DELETE', path);
      if (s.format === 'table') process.stdout.write(`${data.name}: revoked\n`);
      else print(s.format, data, [], []);
    });

  program
    .command('audit')
    .description('the audit log, newest first: every mutating request, allowed or refused (needs an operator or admin token)')
    .option('--limit <n>', 'at most this many entries (1-1000)', '50')
    .option('--before <id>', 'entries older than this one (the id the previous page ends with)')
    .action(async (options: { limit: string; before?: string }) => {
      const limit = z.coerce.number().int().min(1).max(1000).safeParse(options.limit);
      if (!limit.success) throw new UsageError(`--limit must be a whole number from 1 to 1000, not ${options.limit}`);
      if (options.before !== undefined && !AUDIT_ID_PATTERN.test(options.before)) throw new UsageError(`--before must be an audit entry id such as 1700000000000-0, not ${options.before}`);
      const s = session();
      const query = new URLSearchParams({ limit: String(limit.data), ...(options.before ? { before: options.before } : {}) });
      const data = await s.api.get<AuditResponse>(`/v1/audit?${query}`);
      print(s.format, data, data.entries, auditColumns);
      if (s.format === 'table' && data.next) process.stderr.write(`older entries: ferry audit --before ${data.next}\n`);
    });
}
