import { describe, expect, it } from 'vitest';
import { isSuperseded } from './manager.ts';

describe('which copies an agent stops when the cluster says they were superseded', () => {
  const running = { state: 'running' as const, epoch: 2 };

  it('stops a running or frozen copy owned elsewhere now', () => {
    expect(isSuperseded(running, { id: 'w', owner: 'h3', epoch: 3 }, 'h2')).toBe(true);
    expect(isSuperseded({ state: 'frozen', epoch: 2 }, { id: 'w', owner: 'h3', epoch: 3 }, 'h2')).toBe(true);
    expect(isSuperseded(running, { id: 'w', owner: null, epoch: 2 }, 'h2')).toBe(true);
  });

  it('stops an older epoch on the owner itself', () => {
    expect(isSuperseded(running, { id: 'w', owner: 'h2', epoch: 3 }, 'h2')).toBe(true);
  });

  it('keeps a copy it holds at the cluster epoch or newer (the cluster view is the stale one)', () => {
    expect(isSuperseded(running, { id: 'w', owner: 'h2', epoch: 2 }, 'h2')).toBe(false);
    expect(isSuperseded({ state: 'running', epoch: 5 }, { id: 'w', owner: 'h2', epoch: 4 }, 'h2')).toBe(false);
  });

  it('never touches a copy a migration is moving, nor one not running', () => {
    expect(isSuperseded({ state: 'migrating', epoch: 2 }, { id: 'w', owner: 'h3', epoch: 3 }, 'h2')).toBe(false);
    expect(isSuperseded({ state: 'stopped', epoch: 2 }, { id: 'w', owner: 'h3', epoch: 3 }, 'h2')).toBe(false);
  });
});
