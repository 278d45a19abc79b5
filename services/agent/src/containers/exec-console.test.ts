import { describe, expect, it } from 'vitest';
import { sessionMembers, sessionOfStat } from './exec-console.ts';

describe('a console session’s processes', () => {
  it('reads the session id from a /proc stat line, whatever the process name holds', () => {
    expect(sessionOfStat('2025 (cat) R 1403 1403 2885 0 -1 4194304')).toBe(2885);
    expect(sessionOfStat('77 (a) b) (c) S 1 77 70 0 -1 4194560')).toBe(70);
    expect(sessionOfStat('')).toBeNull();
  });

  it('finds this process among the members of its own session', async () => {
    const own = sessionOfStat(await import('node:fs/promises').then((fs) => fs.readFile('/proc/self/stat', 'utf8')));
    expect(own).not.toBeNull();
    expect(await sessionMembers(own!)).toContain(process.pid);
  });
});
