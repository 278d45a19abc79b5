/**
 * `npm run bench [intake|migration ...]`: every benchmark by default, each printing its table.
 * Results with the machine go to bench/RESULTS.md.
 */
import { z } from 'zod';

const Which = z.array(z.enum(['intake', 'migration'])).default([]);
const chosen = Which.safeParse(process.argv.slice(2));
if (!chosen.success) {
  console.error(`usage: npm run bench [intake] [migration]: ${chosen.error.issues[0]?.message}`);
  process.exit(2);
}
const which = chosen.data.length > 0 ? chosen.data : (['intake', 'migration'] as const);
for (const name of which) {
  console.log(`\n## ${name}\n`);
  if (name === 'intake') await import('./intake.ts');
  else await (await import('./migration.ts')).runMigrationBenchmark();
}
