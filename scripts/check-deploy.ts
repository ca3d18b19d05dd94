/**
 * `npm run check:deploy [-- [--allow <rule>]… [<template.json>]]`: checks the packaged CloudFormation
 * template against the deploy rules (scripts/deploy-rules). Without a file it packages first
 * (`npm run package`, offline) and checks `.serverless/cloudformation-template-update-stack.json`.
 * `--allow <rule>` accepts a rule a stage breaks on purpose (e.g. `reserved-concurrency` for a
 * stage deployed with `--param registerCertificateReservedConcurrency=…` into an account whose
 * concurrency quota allows it).
 * Exit code 0: no findings; 1: findings (one line each on stderr); 2: usage error, or the template
 * could not be packaged or read.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkTemplate, formatFinding, RULE_IDS, readTemplate } from './deploy-rules/index';

const root = fileURLToPath(new URL('..', import.meta.url));

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const allow: string[] = [];
  let file: string | undefined;
  for (let index = 0; index < args.length; index += 1) {
    const arg = args[index] ?? '';
    if (arg === '--allow') {
      index += 1;
      const rule = args[index] ?? '';
      if (!(RULE_IDS as readonly string[]).includes(rule)) {
        process.stderr.write(`check:deploy: --allow takes one of ${RULE_IDS.join(', ')}\n`);
        return 2;
      }
      allow.push(rule);
    } else if (arg.startsWith('-') || file) {
      process.stderr.write('usage: check-deploy [--allow <rule>]… [<template.json>]\n');
      return 2;
    } else file = arg;
  }
  if (!file) {
    const packaged = spawnSync(process.execPath, [join(root, 'scripts', 'package.mjs')], {
      cwd: root,
      stdio: 'inherit',
    });
    if (packaged.status !== 0) return 2;
    file = join(root, '.serverless', 'cloudformation-template-update-stack.json');
  }
  let template: Awaited<ReturnType<typeof readTemplate>>;
  try {
    template = await readTemplate(file);
  } catch (error) {
    process.stderr.write(`check:deploy: cannot read ${file}: ${(error as Error).message}\n`);
    return 2;
  }
  const findings = checkTemplate(template, { allow });
  for (const finding of findings) process.stderr.write(`${formatFinding(finding)}\n`);
  const resources = Object.keys(template.Resources ?? {}).length;
  const allowed = allow.length > 0 ? ` (allowed: ${allow.join(', ')})` : '';
  process.stdout.write(
    `check:deploy: ${file}: ${resources} resources, ${findings.length} finding(s)${allowed}\n`,
  );
  return findings.length === 0 ? 0 : 1;
}

process.exitCode = await main();
