import { resolve } from 'node:path';
import type { Command } from 'commander';
import { Context, defaultConfigFile, loadConfig, saveConfig } from '../config.ts';
import { UsageError } from '../errors.ts';
import { outputFormat, type GlobalOptions } from '../session.ts';
import { print } from '../output.ts';

const masked = (token: string) => (token.length <= 8 ? '****' : `${token.slice(0, 4)}…${token.slice(-2)}`);

/** Contexts: named API URLs and tokens in the config file, one of them current. */
export function contextCommands(program: Command): void {
  const file = () => program.opts<GlobalOptions>().config ?? defaultConfigFile();
  const context = program.command('context').description('named clusters (API URL and token) in the config file');
  context
    .command('set <name>')
    .description('add or change a context (and make it current unless --no-use)')
    .option('--no-use', 'do not make it the current context')
    .option('--ca <file>', 'the cluster CA certificate to check an https API against (default /etc/ferry/ca.crt when there)')
    .addHelpText('after', '\nGive the context its API with --url URL --token TOKEN.')
    .action((name: string, options: { use: boolean; ca?: string }) => {
      // --url and --token are the global options, here naming what to save
      const { url, token } = program.opts<GlobalOptions>();
      if (!url || !token) throw new UsageError(`ferry context set ${name} needs --url URL --token TOKEN (npm start prints both)`);
      const parsed = Context.safeParse({ url, token, ...(options.ca ? { ca: resolve(options.ca) } : {}) });
      if (!parsed.success) throw new UsageError(`bad context: ${parsed.error.issues.map((i) => `--${i.path.join('.')}: ${i.message}`).join('; ')}`);
      if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) throw new UsageError(`a context name is letters, digits, '_', '.', '-' (at most 64), not ${name}`);
      const config = loadConfig(file());
      config.contexts[name] = parsed.data;
      if (options.use || !config.current) config.current = name;
      saveConfig(file(), config);
      process.stderr.write(`context ${name} saved in ${file()}${config.current === name ? ' (current)' : ''}\n`);
    });
  context
    .command('use <name>')
    .description('make a context the current one')
    .action((name: string) => {
      const config = loadConfig(file());
      if (!config.contexts[name]) throw new UsageError(`no context ${name} in ${file()}; add it with 'ferry context set ${name} --url URL --token TOKEN'`);
      config.current = name;
      saveConfig(file(), config);
      process.stderr.write(`current context: ${name}\n`);
    });
  context
    .command('list', { isDefault: true })
    .description('every context (tokens masked)')
    .action(() => {
      const config = loadConfig(file());
      const rows = Object.entries(config.contexts).map(([name, c]) => ({ name, url: c.url, token: masked(c.token), current: name === config.current }));
      print(outputFormat(program.opts<GlobalOptions>().output), { current: config.current, contexts: rows }, rows, [
        { header: '', value: (r) => (r.current ? '*' : '') },
        { header: 'name', value: (r) => r.name },
        { header: 'url', value: (r) => r.url },
        { header: 'token', value: (r) => r.token },
      ]);
    });
}
