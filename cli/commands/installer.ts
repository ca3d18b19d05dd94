/**
 * `fleetgate installer bind|unbind|list|token|claim` — provisioning by trusted user
 * (docs/trusted-user.md). `bind` says which serials (or batches) an installer may install; `claim`
 * plays the installer's app: signs in (a token from the local stack's issuer, or `--token`), calls
 * `POST /claims` and keeps the temporary claim where `fleetgate device provision --claim` finds it.
 */
import { localInstallerToken } from '../../local/local-idp-client';
import { readStackFile } from '../../local/stack-file';
import { InstallerStore } from '../../shared/store/installer-store';
import { CommandFailure, type Output, UsageError } from '../io';
import type { CommandRegistry } from '../main';
import { withStore } from '../target';
import { writeIdentity } from './device';

interface StoreOptions {
  target?: string;
  table?: string;
  json?: boolean;
}

interface BindOptions extends StoreOptions {
  batch?: string[];
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

function withInstallers<T>(
  options: StoreOptions,
  output: Output,
  body: (store: InstallerStore) => Promise<T>,
): Promise<T> {
  return withStore(options, output, (target) => body(new InstallerStore(target.store)));
}

function scopes(serials: readonly string[], options: BindOptions) {
  const batches = options.batch ?? [];
  if (serials.length === 0 && batches.length === 0) {
    throw new UsageError('name at least one serial or --batch <batch>');
  }
  return [
    ...serials.map((value) => ({ scope: 'SERIAL' as const, value })),
    ...batches.map((value) => ({ scope: 'BATCH' as const, value })),
  ];
}

/** The running local stack's HTTP API, or the `--api-url` given. */
function apiUrl(given: string | undefined): string {
  if (given) return given.replace(/\/$/, '');
  const url = readStackFile()?.endpoints.httpApi;
  if (!url) {
    throw new CommandFailure(
      'no installer API: start the local stack (`npx fleetgate local up`) or pass --api-url and --token',
    );
  }
  return url;
}

/** A token for `installer` from the local stack's issuer (the local stand-in for the app's sign-in). */
async function localToken(api: string, installer: string, ttlSeconds?: number): Promise<string> {
  try {
    return await localInstallerToken(api, installer, ttlSeconds);
  } catch (error) {
    throw new CommandFailure((error as Error).message);
  }
}

export function registerInstallerCommands({ program, run }: CommandRegistry): void {
  const installer = program
    .command('installer')
    .description(
      'Provisioning by trusted user: bind installers to serials or batches; get a temporary claim as the app would',
    );
  const storeOptions = (command: ReturnType<typeof installer.command>) =>
    command
      .option('--target <target>', 'local (default) or aws', 'local')
      .option('--table <name>', 'the provisioning table (with --target aws)')
      .option('--json', 'print one JSON document');

  storeOptions(
    installer
      .command('bind')
      .description('Let an installer install these serials (or every serial of a batch)')
      .argument('<installer>', "the installer's id: the JWT subject (`sub`) of their sign-in")
      .argument('[serials...]', 'serials the installer may install')
      .option('--batch <batch>', 'every serial of this batch (repeatable)', collect),
  ).action(async (id: string, serials: string[], options: BindOptions) => {
    await run(options.json, async (output) => {
      const wanted = scopes(serials, options);
      const now = new Date().toISOString();
      const result = await withInstallers(options, output, (store) =>
        store.bind(
          wanted.map((binding) => ({
            installer: id,
            ...binding,
            boundBy: 'fleetgate installer bind',
            boundAt: now,
          })),
        ),
      );
      output.say(`installer ${id}: ${result.bound} bound, ${result.existing} already bound`);
      return { installer: id, ...result };
    });
  });

  storeOptions(
    installer
      .command('unbind')
      .description('Take serials (or batches) away from an installer')
      .argument('<installer>', "the installer's id")
      .argument('[serials...]', 'serials')
      .option('--batch <batch>', 'a batch (repeatable)', collect),
  ).action(async (id: string, serials: string[], options: BindOptions) => {
    await run(options.json, async (output) => {
      const wanted = scopes(serials, options);
      const removed = await withInstallers(options, output, async (store) => {
        let count = 0;
        for (const scope of ['SERIAL', 'BATCH'] as const) {
          const values = wanted.filter((binding) => binding.scope === scope).map((binding) => binding.value);
          if (values.length > 0) count += await store.unbind(id, scope, values);
        }
        return count;
      });
      output.say(`installer ${id}: ${removed} binding(s) removed`);
      return { installer: id, removed };
    });
  });

  storeOptions(
    installer
      .command('list')
      .description("An installer's bindings")
      .argument('<installer>', "the installer's id"),
  ).action(async (id: string, options: StoreOptions) => {
    await run(options.json, async (output) => {
      const bindings = await withInstallers(options, output, (store) => store.bindings(id));
      for (const binding of bindings) {
        output.say(`${binding.scope.toLowerCase().padEnd(6)} ${binding.value}  (bound ${binding.boundAt})`);
      }
      if (bindings.length === 0) output.say(`installer ${id} has no bindings`);
      return { installer: id, bindings };
    });
  });

  installer
    .command('token')
    .description("A token for an installer from the local stack's issuer (what the app gets at sign-in)")
    .argument('<installer>', "the installer's id (the token's subject)")
    .option('--ttl <seconds>', 'validity in seconds', '3600')
    .option('--json', 'print one JSON document')
    .action(async (id: string, options: { ttl: string; json?: boolean }) => {
      await run(options.json, async (output) => {
        const ttl = Number(options.ttl);
        if (!Number.isInteger(ttl) || ttl < 1 || ttl > 86_400) {
          throw new UsageError('--ttl must be a whole number of seconds between 1 and 86400');
        }
        const token = await localToken(apiUrl(undefined), id, ttl);
        output.say(token);
        return { installer: id, token };
      });
    });

  installer
    .command('claim')
    .description("Ask the installer API for a temporary claim for one serial, as the installer's app does")
    .argument('<serial>', 'the device the installer is setting up')
    .option('--installer <id>', 'sign in as this installer (local stack: a token from its issuer)')
    .option('--token <jwt>', "the installer's token (instead of --installer; e.g. from Cognito)")
    .option('--api-url <url>', 'the installer API (default: the running local stack)')
    .option('--name <name>', 'keep the claim under .fleetgate/devices/<name>/ (default claim-<serial>)')
    .option('--json', 'print one JSON document')
    .action(
      async (
        serial: string,
        options: { installer?: string; token?: string; apiUrl?: string; name?: string; json?: boolean },
      ) => {
        await run(options.json, async (output) => {
          if (Boolean(options.installer) === Boolean(options.token)) {
            throw new UsageError('give --installer <id> (local stack) or --token <jwt>');
          }
          const api = apiUrl(options.apiUrl);
          const token = options.token ?? (await localToken(api, options.installer as string));
          const response = await fetch(`${api}/claims`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
            body: JSON.stringify({ serial }),
          });
          const body = (await response.json().catch(() => ({}))) as Record<string, unknown>;
          if (response.status !== 201) {
            const reason = String(body.error ?? body.message ?? response.statusText);
            throw new CommandFailure(
              `POST /claims answered ${response.status} ${reason}${body.error ? `: ${String(body.message)}` : ''}`,
              { status: response.status, ...body },
            );
          }
          const name = options.name ?? `claim-${serial}`;
          const paths = writeIdentity(
            name,
            {
              name,
              kind: 'temporary-claim',
              certificateId: String(body.certificateId),
              serial,
              templateName: String(body.templateName),
            },
            String(body.certificatePem),
            String(body.privateKey),
          );
          output.say(`temporary claim ${String(body.certificateId)} for ${serial}`);
          output.say(`  installer    ${String(body.installer)}`);
          output.say(`  expires      ${String(body.expiration)}`);
          output.say(`  files        ${paths.dir}`);
          output.say(
            `next (within the claim's lifetime): npx fleetgate device provision <device> --serial ${serial} --claim ${name}`,
          );
          return {
            serial,
            installer: body.installer,
            certificateId: body.certificateId,
            templateName: body.templateName,
            expiration: body.expiration,
            claim: name,
            certificateFile: paths.certificate,
            privateKeyFile: paths.privateKey,
          };
        });
      },
    );
}
