// Bundles the CLI — its sources, the workspace packages it imports (@ferry/core, @ferry/protocol)
// and its dependencies — into one ES module, dist/ferry.mjs, which bin/ferry runs with plain
// node: no TypeScript compiled at each call. `npm run build` and `npm start` run this.
// esbuild: a devDependency at the version tsx itself uses (one copy in node_modules).
import { build } from 'esbuild';
import { renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const outfile = join(here, 'dist', 'ferry.mjs');
// written aside and renamed into place: a ferry started meanwhile never reads half a bundle
const partial = `${outfile}.${process.pid}.tmp`;

await build({
  entryPoints: [join(here, 'src', 'main.ts')],
  outfile: partial,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // commander is CommonJS: its require() calls of node built-ins need a require in an ES module
  banner: { js: "import { createRequire as __ferryRequire } from 'node:module';\nconst require = __ferryRequire(import.meta.url);" },
  legalComments: 'none',
  logLevel: 'warning',
});
renameSync(partial, outfile);
console.log(`built ${outfile}`);
