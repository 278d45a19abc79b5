import { describe, expect, it } from 'vitest';
import { CliError } from './errors.ts';
import { checkSpec, parseAddresses, parseLabels, parseMiB, specFromFile, specFromFlags } from './create-spec.ts';

const error = (f: () => unknown): string => {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(CliError);
    expect((err as CliError).exitCode).toBe(2);
    return (err as Error).message;
  }
  throw new Error('expected an error');
};

describe('ferry create: flags to a spec', () => {
  it('reads sizes in MiB, with units', () => {
    expect(parseMiB('512', '--memory')).toBe(512);
    expect(parseMiB('512M', '--memory')).toBe(512);
    expect(parseMiB('1.5G', '--memory')).toBe(1536);
    expect(parseMiB('2GiB', '--disk')).toBe(2048);
    expect(error(() => parseMiB('lots', '--disk'))).toContain('--disk lots: not a size');
    expect(error(() => parseMiB('1.3M', '--memory'))).toContain('whole number of MiB');
  });

  it('builds the spec the flags describe, with defaults for what they leave out', () => {
    const spec = specFromFlags('web1', [], { template: 'debian-12', memory: '1G', address: ['prod=10.77.0.20'], label: ['tier=web', 'zone=a'], host: ['h1'], ha: true });
    expect(spec).toEqual({
      id: 'web1',
      template: 'debian-12',
      command: ['/sbin/init'],
      resources: { vcpus: 0.5, memoryMiB: 1024, diskMiB: 1024 },
      networks: [{ network: 'prod', address: '10.77.0.20' }],
      pool: 'local',
      labels: { tier: 'web', zone: 'a' },
      env: [],
      ha: { enabled: true, priority: 0 },
      placement: { hosts: ['h1'] },
    });
    expect(specFromFlags('c', ['/usr/bin/ferry-workload', '--port', '7000'], { template: 'busybox', cpus: '0.25' }).command).toEqual(['/usr/bin/ferry-workload', '--port', '7000']);
  });

  it('refuses flags it cannot read, saying which', () => {
    expect(error(() => specFromFlags('w', [], {}))).toContain('needs --template');
    expect(error(() => parseLabels(['novalue']))).toContain('--label novalue: must be KEY=VALUE');
    expect(error(() => parseLabels(['a=1', 'a=2']))).toContain('--label a given twice');
    expect(error(() => parseAddresses(['10.0.0.1'], undefined))).toContain('which network?');
    expect(parseAddresses(['10.0.0.1'], 'prod')).toEqual([{ network: 'prod', address: '10.0.0.1' }]);
    expect(error(() => specFromFlags('w', [], { template: 't', cpus: 'two' }))).toContain('--cpus two: not a number');
  });

  it('checks the spec as the API would, every problem at once, one line each', () => {
    const message = error(() => checkSpec(specFromFlags('Bad_Name', [], { template: 'busybox', memory: '4', address: ['prod=10.0.0.300'] }), 'the flags'));
    expect(message).toMatch(/^3 problem\(s\) with the flags, nothing was sent:/);
    expect(message).toMatch(/^ {2}id: /m);
    expect(message).toMatch(/^ {2}resources\.memoryMiB: /m);
    expect(message).toMatch(/^ {2}networks\.0\.address: /m);
    expect(checkSpec(specFromFlags('ok', [], { template: 'busybox' }), 'the flags')).toMatchObject({ id: 'ok' });
  });

  it('reads a spec file (JSON or YAML); NAME overrides its id', () => {
    const json = JSON.stringify({ id: 'a', template: 'busybox', command: ['/bin/sh'], resources: { vcpus: 1, memoryMiB: 64, diskMiB: 64 }, pool: 'local' });
    expect(specFromFile('a.json', undefined, () => json)).toMatchObject({ id: 'a' });
    expect(specFromFile('a.json', 'b', () => json)).toMatchObject({ id: 'b', template: 'busybox' });
    expect(specFromFile('a.yaml', undefined, () => 'id: y\ntemplate: busybox\n')).toEqual({ id: 'y', template: 'busybox' });
    expect(error(() => specFromFile('x.json', undefined, () => '{"id": '))).toContain('x.json is neither JSON nor YAML');
    expect(error(() => specFromFile('x.json', undefined, () => '[1, 2]'))).toContain('must hold one workload spec (an object), not a list');
    expect(
      error(() =>
        specFromFile('x.json', undefined, () => {
          throw new Error('ENOENT: no such file');
        }),
      ),
    ).toContain('cannot read x.json');
    expect(
      error(() =>
        checkSpec(
          specFromFile('s.json', undefined, () => '{"id":"s"}'),
          's.json',
        ),
      ),
    ).toMatch(/problem\(s\) with s\.json, nothing was sent:\n {2}template: /);
  });
});
