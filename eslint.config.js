// ESLint: the recommended rules of ESLint and typescript-eslint (syntax-level, fast: no type
// information), over every TypeScript and JavaScript file of the workspaces. Formatting is
// Prettier's (.prettierrc.json); `npm run lint` checks both.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['**/node_modules/**', '**/build/**', '**/dist/**', 'test/artifacts/**', 'deploy/grafana/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: globals.node },
    rules: {
      // an unused argument or a caught error named `_…` is deliberate
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  // tests may read loosely typed answers (an HTTP body as `any`); the product may not
  { files: ['**/*.test.ts', 'test/**/*.ts', '**/testing/**/*.ts'], rules: { '@typescript-eslint/no-explicit-any': 'off' } },
  // the dashboard runs in the browser
  { files: ['services/api/ui/**/*.js'], languageOptions: { globals: globals.browser } },
);
