import { describe, expect, it } from 'vitest';
import { parseKeyValues } from './cgroups.ts';

describe('cgroup files', () => {
  it('parses key/value files such as memory.oom_control and memory.events', () => {
    const values = parseKeyValues('oom_kill_disable 0\nunder_oom 0\noom_kill 3\n');
    expect(values.get('oom_kill')).toBe(3);
    expect(values.get('under_oom')).toBe(0);
    expect(values.has('missing')).toBe(false);
  });
});
