import { describe, expect, it } from 'vitest';
import { Reverter } from './reverter.ts';

describe('Reverter', () => {
  it('undoes the steps in reverse order on fail, each once', async () => {
    const done: string[] = [];
    const revert = new Reverter();
    revert.add(() => done.push('a'));
    revert.add(async () => {
      await Promise.resolve();
      done.push('b');
    });
    revert.add(() => done.push('c'));
    await revert.fail();
    expect(done).toEqual(['c', 'b', 'a']);
    await revert.fail();
    expect(done).toEqual(['c', 'b', 'a']);
  });

  it('drops the steps on success', async () => {
    const done: string[] = [];
    const revert = new Reverter();
    revert.add(() => done.push('a'));
    revert.success();
    await revert.fail();
    expect(done).toEqual([]);
  });

  it('goes on past a failing undo and reports it by name', async () => {
    const done: string[] = [];
    const errors: string[] = [];
    const revert = new Reverter((what, err) => errors.push(`${what}: ${(err as Error).message}`));
    revert.add(() => done.push('a'));
    revert.add(() => {
      throw new Error('boom');
    }, 'network');
    revert.add(() => Promise.reject(new Error('async boom')), 'daemon');
    await revert.fail();
    expect(done).toEqual(['a']);
    expect(errors).toEqual(['daemon: async boom', 'network: boom']);
  });

  it('run: keeps the steps when the work returns, undoes them and rethrows when it throws', async () => {
    const done: string[] = [];
    await expect(
      Reverter.run(async (revert) => {
        revert.add(() => done.push('kept'));
        return 42;
      }),
    ).resolves.toBe(42);
    expect(done).toEqual([]);

    const cause = new Error('step 3 failed');
    await expect(
      Reverter.run(async (revert) => {
        revert.add(() => done.push('one'));
        revert.add(() => done.push('two'));
        throw cause;
      }),
    ).rejects.toBe(cause);
    expect(done).toEqual(['two', 'one']);
  });

  it('run: steps made before an early success() stay when later work fails', async () => {
    const done: string[] = [];
    await expect(
      Reverter.run(async (revert) => {
        revert.add(() => done.push('before'));
        revert.success();
        revert.add(() => done.push('after'));
        throw new Error('later');
      }),
    ).rejects.toThrow('later');
    expect(done).toEqual(['after']);
  });

  it('the undo error never replaces the error that caused the revert', async () => {
    const cause = new Error('the real one');
    await expect(
      Reverter.run(async (revert) => {
        revert.add(() => {
          throw new Error('undo failed');
        });
        throw cause;
      }),
    ).rejects.toBe(cause);
  });
});
