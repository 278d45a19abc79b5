import { z } from 'zod';
import { WorkloadId } from './workloads.ts';

/**
 * Operating a running container from outside: `exec` (one command, its output answered at once,
 * like `vzctl exec`) and `console` (an interactive shell with a terminal, streamed). The API asks
 * the workload's current agent over NATS; nobody else may (natsPermissions):
 *
 * - `ferry.exec.<host>`: request/reply, one command (AgentExecRequest → AgentReply of ExecResult);
 * - `ferry.console.<host>.open`: request/reply, opens a session (ConsoleOpenRequest);
 * - `ferry.console.<host>.<session>.in`: the API → that agent: keystrokes and control (ConsoleMessage);
 * - `ferry.console.<host>.<session>.out`: that agent → the API: terminal output and the end.
 *
 * A session id is 128 random bits (base64url), made by the API; only the API and that host's agent
 * may use a session's subjects, the id being unguessable on top of that.
 */
export const execSubject = (hostId: string): string => `ferry.exec.${hostId}`;
export const consoleSubjects = {
  open: (hostId: string) => `ferry.console.${hostId}.open`,
  input: (hostId: string, sessionId: string) => `ferry.console.${hostId}.${sessionId}.in`,
  output: (hostId: string, sessionId: string) => `ferry.console.${hostId}.${sessionId}.out`,
};

export const EXEC_LIMITS = {
  /** arguments of one command */
  argv: 256,
  /** bytes of one argument */
  argBytes: 4096,
  /** bytes of stdin given to the command */
  stdinBytes: 256 * 1024,
  /** bytes kept of stdout and of stderr each (the rest is counted and dropped: `truncated`) */
  outputBytes: 256 * 1024,
  defaultTimeoutMs: 30_000,
  maxTimeoutMs: 600_000,
} as const;

const utf8Bytes = (s: string) => new TextEncoder().encode(s).byteLength;

const Arg = z
  .string()
  .refine((s) => !s.includes('\0'), 'an argument cannot contain a NUL byte')
  .refine((s) => utf8Bytes(s) <= EXEC_LIMITS.argBytes, `an argument is at most ${EXEC_LIMITS.argBytes} bytes`);

/** POST /v1/workloads/:id/exec: the command as an argument array (never a shell line: no shell runs it unless argv names one). */
export const ExecRequest = z.strictObject({
  argv: z
    .array(Arg)
    .min(1, 'argv needs at least the program to run')
    .max(EXEC_LIMITS.argv, `at most ${EXEC_LIMITS.argv} arguments`)
    .refine((argv) => argv.length === 0 || argv[0] !== '', 'argv[0], the program, cannot be empty'),
  /** given to the command on its standard input (then closed); absent: an empty input */
  stdin: z
    .string()
    .refine((s) => utf8Bytes(s) <= EXEC_LIMITS.stdinBytes, `stdin is at most ${EXEC_LIMITS.stdinBytes} bytes`)
    .optional(),
  /** the command is killed after this long (default 30 s) */
  timeoutMs: z.number().int().min(100).max(EXEC_LIMITS.maxTimeoutMs).default(EXEC_LIMITS.defaultTimeoutMs),
});
export type ExecRequest = z.input<typeof ExecRequest>;

/** What the API sends the agent: the request, the workload and the epoch the API knows it at (a stale copy refuses). */
export const AgentExecRequest = ExecRequest.extend({ workloadId: WorkloadId, epoch: z.number().int().positive() });
export type AgentExecRequest = z.input<typeof AgentExecRequest>;

export const ExecResult = z.object({
  /** the command's exit code; null when a signal ended it */
  exitCode: z.number().int().nullable(),
  /** the signal that ended it (a timeout's SIGKILL among them), else null */
  signal: z.string().nullable(),
  timedOut: z.boolean(),
  /** killed before its end for another reason than the timeout (the workload began to migrate or suspend), else null */
  killedBecause: z.string().nullable(),
  stdout: z.string(),
  stderr: z.string(),
  /** more output than EXEC_LIMITS.outputBytes: the first bytes are kept, the rest dropped */
  truncated: z.object({ stdout: z.boolean(), stderr: z.boolean() }),
  ms: z.number().nonnegative(),
  hostId: z.string(),
});
export type ExecResult = z.infer<typeof ExecResult>;

/** base64url of 16 random bytes or more */
export const ConsoleSessionId = z.string().regex(/^[A-Za-z0-9_-]{22,64}$/, 'a session id is 22-64 base64url characters');
const TermSize = { rows: z.number().int().min(1).max(1000).default(24), cols: z.number().int().min(1).max(1000).default(80) };
/** TERM inside the container: a terminfo name, nothing a shell could read as more */
export const TermName = z.string().regex(/^[A-Za-z0-9._+-]{1,40}$/, 'TERM is a terminfo name (letters, digits, . _ + -)');

/** POST /v1/workloads/:id/console: a ticket for one console connection (its size and TERM at the start). */
export const ConsoleTicketRequest = z.strictObject({ ...TermSize, term: TermName.default('xterm-256color') });
export type ConsoleTicketRequest = z.input<typeof ConsoleTicketRequest>;

export const CONSOLE_TICKET_TTL_MS = 30_000;
export const ConsoleTicket = z.object({
  /** the one-time credential of the connection (128 random bits), valid CONSOLE_TICKET_TTL_MS */
  ticket: z.string(),
  /** open it as a WebSocket: wss://<api><path> (ws:// without TLS) */
  path: z.string(),
  expiresAt: z.number().int(),
  workloadId: WorkloadId,
  hostId: z.string(),
});
export type ConsoleTicket = z.infer<typeof ConsoleTicket>;

/** The API → the agent: open a session. */
export const ConsoleOpenRequest = z.strictObject({
  sessionId: ConsoleSessionId,
  workloadId: WorkloadId,
  epoch: z.number().int().positive(),
  ...TermSize,
  term: TermName.default('xterm-256color'),
});
export type ConsoleOpenRequest = z.input<typeof ConsoleOpenRequest>;
export const ConsoleOpenResult = z.object({ sessionId: ConsoleSessionId, hostId: z.string() });

/**
 * Messages on a session's `.in` and `.out` subjects: one type byte, then the body. Data is the
 * terminal's bytes as they are; the others carry small JSON.
 */
export const CONSOLE_MESSAGE = { data: 0, resize: 1, ping: 2, end: 3 } as const;
export const ConsoleResize = z.strictObject({ rows: z.number().int().min(1).max(1000), cols: z.number().int().min(1).max(1000) });
/** the session ended: the shell's exit code (null: it did not exit by itself) and why */
export const ConsoleEnd = z.strictObject({ exitCode: z.number().int().nullable(), reason: z.string().max(500) });
export type ConsoleEnd = z.infer<typeof ConsoleEnd>;

export type ConsoleMessage = { type: 'data'; data: Uint8Array } | { type: 'resize'; rows: number; cols: number } | { type: 'ping' } | { type: 'end'; exitCode: number | null; reason: string };

export function encodeConsoleMessage(message: ConsoleMessage): Uint8Array {
  const body =
    message.type === 'data'
      ? message.data
      : message.type === 'ping'
        ? new Uint8Array(0)
        : new TextEncoder().encode(JSON.stringify(message.type === 'resize' ? { rows: message.rows, cols: message.cols } : { exitCode: message.exitCode, reason: message.reason }));
  const out = new Uint8Array(body.byteLength + 1);
  out[0] = CONSOLE_MESSAGE[message.type];
  out.set(body, 1);
  return out;
}

/** Throws on anything that is not a well-formed message (callers drop it). */
export function decodeConsoleMessage(bytes: Uint8Array): ConsoleMessage {
  if (bytes.byteLength === 0) throw new Error('an empty console message');
  const body = bytes.subarray(1);
  const json = () => JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body)) as unknown;
  switch (bytes[0]) {
    case CONSOLE_MESSAGE.data:
      return { type: 'data', data: body };
    case CONSOLE_MESSAGE.resize:
      return { type: 'resize', ...ConsoleResize.parse(json()) };
    case CONSOLE_MESSAGE.ping:
      return { type: 'ping' };
    case CONSOLE_MESSAGE.end:
      return { type: 'end', ...ConsoleEnd.parse(json()) };
    default:
      throw new Error(`unknown console message type ${bytes[0]}`);
  }
}

/**
 * Both ends of a session send a ping this often when they have nothing else to send, and end the
 * session when they hear nothing from the other for CONSOLE_SILENCE_MS (the API went away, the
 * agent restarted): no shell outlives its reader for long.
 */
export const CONSOLE_PING_MS = 5_000;
export const CONSOLE_SILENCE_MS = 20_000;

/** The WebSocket's control messages (text frames; terminal bytes go in binary frames both ways). */
export const ConsoleClientControl = z.discriminatedUnion('type', [z.strictObject({ type: z.literal('resize'), rows: z.number().int().min(1).max(1000), cols: z.number().int().min(1).max(1000) })]);
export type ConsoleServerControl = { type: 'ready'; workloadId: string; hostId: string } | { type: 'end'; exitCode: number | null; reason: string };
