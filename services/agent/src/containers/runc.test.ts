import { describe, expect, it } from 'vitest';
import { Criu } from './criu.ts';
import { Runc } from './runc.ts';

describe('runc invocations', () => {
  it('name the configured CRIU binary, not whatever criu is first on PATH', () => {
    const [binary, args] = new Runc('/var/lib/ferry/runc', '/usr/sbin/runc', new Criu('/opt/ferry/bin/criu')).argv(['checkpoint', 'w1']);
    expect(binary).toBe('/usr/sbin/runc');
    expect(args).toEqual(['--root', '/var/lib/ferry/runc', '--criu', '/opt/ferry/bin/criu', 'checkpoint', 'w1']);
  });
});
