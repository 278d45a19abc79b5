/**
 * `npm run bench [intake|planner|migration|failover|scale|queue|density ...]`: every benchmark by default, each printing its table.
 * Results with the machine go to bench/RESULTS.md.
 */
import { z } from 'zod';

const Which = z.array(z.enum(['intake', 'planner', 'migration', 'failover', 'scale', 'queue', 'density'])).default([]);
const chosen = Which.safeParse(process.argv.slice(2));
if (!chosen.success) {
  console.error(`usage: npm run bench [intake] [planner] [migration] [failover] [scale] [queue] [density]: ${chosen.error.issues[0]?.message}`);
  process.exit(2);
}
const which = chosen.data.length > 0 ? chosen.data : (['intake', 'planner', 'migration', 'failover', 'scale', 'queue'] as const);
for (const name of which) {
  console.log(`\n## ${name}\n`);
  if (name === 'intake') await import('./intake.ts');
  else if (name === 'planner') (await import('./planner.ts')).runPlannerBenchmark();
  else if (name === 'migration') await (await import('./migration.ts')).runMigrationBenchmark();
  else if (name === 'failover') await (await import('./failover.ts')).runFailoverBenchmark();
  else if (name === 'queue') await (await import('./queue-floor.ts')).runQueueFloorBenchmark();
  else if (name === 'density') await (await import('./density.ts')).runDensityBenchmark();
  else await (await import('./scale.ts')).runScaleBenchmark();
}
