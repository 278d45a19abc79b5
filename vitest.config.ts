import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          // test/helpers/*.unit.test.ts: the pure parts of the lab tests' helpers (no lab, no servers)
          include: ['packages/*/src/**/*.test.ts', 'services/*/src/**/*.test.ts', 'deploy/src/**/*.test.ts', 'test/helpers/**/*.unit.test.ts'],
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, 'test/helpers/**/*.unit.test.ts'],
          globalSetup: ['test/global-setup.ts'],
          // One NATS and one Redis serve every file; files run one after another so that their
          // agents and schedulers never see each other's hosts.
          fileParallelism: false,
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
