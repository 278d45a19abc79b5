import { describe, expect, it } from 'vitest';
import { AgentExecRequest, ConsoleOpenRequest, ConsoleTicketRequest, EXEC_LIMITS, ExecRequest, decodeConsoleMessage, encodeConsoleMessage, type ConsoleMessage } from './operate.ts';

const problems = (result: { success: boolean; error?: { issues: Array<{ message: string }> } }) => (result.success ? [] : result.error!.issues.map((i) => i.message));

describe('exec and console requests', () => {
  it('takes an argument array with defaults, and refuses what could not run as asked', () => {
    expect(ExecRequest.parse({ argv: ['ls', '-l', '/'] })).toEqual({ argv: ['ls', '-l', '/'], timeoutMs: EXEC_LIMITS.defaultTimeoutMs });
    expect(ExecRequest.parse({ argv: ['cat'], stdin: 'x', timeoutMs: 500 })).toEqual({ argv: ['cat'], stdin: 'x', timeoutMs: 500 });
    expect(problems(ExecRequest.safeParse({ argv: [] }))).toEqual(['argv needs at least the program to run']);
    expect(problems(ExecRequest.safeParse({ argv: [''] }))).toEqual(['argv[0], the program, cannot be empty']);
    expect(problems(ExecRequest.safeParse({ argv: ['a\0b'] }))).toEqual(['an argument cannot contain a NUL byte']);
    expect(problems(ExecRequest.safeParse({ argv: ['echo', 'é'.repeat(2049)] }))).toEqual([`an argument is at most ${EXEC_LIMITS.argBytes} bytes`]);
    expect(problems(ExecRequest.safeParse({ argv: Array(257).fill('x') }))).toEqual([`at most ${EXEC_LIMITS.argv} arguments`]);
    expect(problems(ExecRequest.safeParse({ argv: ['cat'], stdin: 'x'.repeat(EXEC_LIMITS.stdinBytes + 1) }))).toEqual([`stdin is at most ${EXEC_LIMITS.stdinBytes} bytes`]);
    expect(ExecRequest.safeParse({ argv: 'ls -l' }).success).toBe(false); // a shell line is not an argv
    expect(ExecRequest.safeParse({ argv: ['ls'], timeoutMs: 99 }).success).toBe(false);
    expect(ExecRequest.safeParse({ argv: ['ls'], timeoutMs: 600_001 }).success).toBe(false);
    expect(ExecRequest.safeParse({ argv: ['ls'], shell: true }).success).toBe(false); // unknown fields refused
    expect(AgentExecRequest.safeParse({ argv: ['ls'], workloadId: 'web-1' }).success).toBe(false); // the agent needs the epoch
    expect(AgentExecRequest.parse({ argv: ['ls'], workloadId: 'web-1', epoch: 3 })).toMatchObject({ workloadId: 'web-1', epoch: 3 });
  });

  it('console: a terminal size, a TERM that is only a name, an unguessable session id', () => {
    expect(ConsoleTicketRequest.parse({})).toEqual({ rows: 24, cols: 80, term: 'xterm-256color' });
    expect(ConsoleTicketRequest.safeParse({ term: 'xterm; rm -rf /' }).success).toBe(false);
    expect(ConsoleTicketRequest.safeParse({ rows: 0 }).success).toBe(false);
    const open = { workloadId: 'web-1', epoch: 1, sessionId: 'AAAAAAAAAAAAAAAAAAAAAA' };
    expect(ConsoleOpenRequest.parse(open)).toMatchObject({ rows: 24, cols: 80 });
    expect(ConsoleOpenRequest.safeParse({ ...open, sessionId: 'short' }).success).toBe(false);
    expect(ConsoleOpenRequest.safeParse({ ...open, sessionId: 'a.b.c.d.e.f.g.h.i.j.k.l' }).success).toBe(false); // no NATS token separators
  });

  it('console messages round-trip, and malformed ones are refused', () => {
    const messages: ConsoleMessage[] = [
      { type: 'data', data: new Uint8Array([0, 1, 255, 27]) },
      { type: 'resize', rows: 40, cols: 120 },
      { type: 'ping' },
      { type: 'end', exitCode: 5, reason: 'the shell exited' },
      { type: 'end', exitCode: null, reason: 'the workload is migrating to another host' },
    ];
    for (const message of messages) expect(decodeConsoleMessage(encodeConsoleMessage(message))).toEqual(message);
    expect(() => decodeConsoleMessage(new Uint8Array(0))).toThrow(/empty/);
    expect(() => decodeConsoleMessage(new Uint8Array([9]))).toThrow(/unknown console message type 9/);
    expect(() => decodeConsoleMessage(new Uint8Array([1, ...new TextEncoder().encode('{"rows":0,"cols":80}')]))).toThrow();
    expect(() => decodeConsoleMessage(new Uint8Array([3, 0xff]))).toThrow();
  });
});
