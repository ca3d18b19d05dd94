/**
 * `fleetgate certificates register <pem…> --kind claim|ca`: tells the store about claim and CA
 * certificates, so that the expiry sweep reports them (an expired claim certificate silently stops
 * every device still on the shelf) and reconciliation does not count them as unknown. Idempotent:
 * a certificate already recorded is left as it is.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { formatIssues } from '../../schemas/issues';
import { parseCertificatePem } from '../../shared/certificates';
import { ValidationError } from '../../shared/errors';
import { anchorCertificateRecord } from '../../shared/store/records';
import { CommandFailure, UsageError } from '../io';
import type { CommandRegistry } from '../main';
import { resolveStoreTarget } from '../target';

const KINDS = { claim: 'CLAIM', ca: 'CA' } as const;

/** `fleetgate certificates register` */
export function registerCertificatesCommands({ program, run }: CommandRegistry): void {
  const certificates = program
    .command('certificates')
    .description('Claim and CA certificates fleetgate watches (expiry sweep, reconciliation)');
  certificates
    .command('register')
    .description('Record claim or CA certificates (PEM files) in the store; idempotent')
    .argument('<pem...>', 'PEM files, one certificate each')
    .requiredOption('--kind <kind>', 'claim or ca')
    .option('--json', 'print one JSON document')
    .option('--target <target>', 'local (default) or aws')
    .option('--table <name>', 'table name (default: the stack’s, or TABLE_NAME)')
    .action(
      async (files: string[], options: { kind: string; json?: boolean; target?: string; table?: string }) => {
        await run(options.json, async (output) => {
          const kind = KINDS[options.kind as keyof typeof KINDS];
          if (!kind) throw new UsageError(`--kind must be claim or ca (got "${options.kind}")`);
          const parsed = files.map((file) => {
            if (!existsSync(file) || !statSync(file).isFile()) throw new UsageError(`${file}: no such file`);
            try {
              return { file, certificate: parseCertificatePem(readFileSync(file, 'utf8')) };
            } catch (error) {
              if (error instanceof ValidationError)
                throw new CommandFailure(`${file}: ${formatIssues(error.issues)}`);
              throw error;
            }
          });
          const target = await resolveStoreTarget(options, output);
          try {
            const now = new Date().toISOString();
            const results = [];
            for (const { file, certificate } of parsed) {
              const added = await target.store.putCertificateIfAbsent(
                anchorCertificateRecord(certificate, { kind, now }),
              );
              output.say(
                `${added ? 'registered' : 'already known'}  ${kind} ${certificate.certificateId}  expires ${certificate.notAfter}  (${file})`,
              );
              results.push({
                file,
                certificateId: certificate.certificateId,
                kind,
                notAfter: certificate.notAfter,
                result: added ? 'registered' : 'already-known',
              });
            }
            return { table: target.tableName, certificates: results };
          } finally {
            await target.close();
          }
        });
      },
    );
}
