import { describe, expect, it } from 'vitest';
import { Lease } from './lease.ts';

describe('agent lease', () => {
  it('is renewed by acknowledgements, counted from when the acknowledged report was sent', () => {
    let now = 0;
    const lease = new Lease(() => now, 5000, 5000);
    lease.sent(0);
    now = 3000;
    lease.sent(1);
    now = 4000;
    lease.acknowledged(1, 5000); // sent at 3000: valid until 8000
    now = 7999;
    expect(lease.valid()).toBe(true);
    now = 8500;
    expect(lease.valid()).toBe(false);
    expect(lease.expiredFor()).toBe(500);
  });

  it('ignores acknowledgements of reports it never sent, and never shortens the lease', () => {
    let now = 0;
    const lease = new Lease(() => now, 5000, 5000);
    lease.acknowledged(99, 60_000);
    now = 5001;
    expect(lease.valid()).toBe(false);
    lease.sent(1);
    lease.acknowledged(1, 10_000);
    lease.acknowledged(1, 1_000);
    now = 14_000;
    expect(lease.valid()).toBe(true);
  });

  it('starts with what a previous run was granted, never with a lease of its own making', () => {
    let now = 100_000;
    expect(new Lease(() => now, 10_000).valid()).toBe(true); // valid until exactly now
    now++;
    expect(new Lease(() => now, 10_000, 100_000).valid()).toBe(false);
    expect(new Lease(() => now, 10_000, 104_000).validUntilMs()).toBe(104_000);
  });
});
