/**
 * `npm run check:deploy [-- <template.json>]`: checks the packaged CloudFormation template against
 * the deploy rules (scripts/deploy-rules). Without an argument it packages first (`npm run package`,
 * offline) and checks `.serverless/cloudformation-template-update-stack.json`.
 * Exit code 0: no findings; 1: findings (one line each on stderr); 2: the template could not be read.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkTemplate, formatFinding, readTemplate } from './deploy-rules/index';

const root = fileURLToPath(new URL('..', import.meta.url));

async function main(): Promise<number> {
  let file = process.argv[2];
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
  const findings = checkTemplate(template);
  for (const finding of findings) process.stderr.write(`${formatFinding(finding)}\n`);
  const resources = Object.keys(template.Resources ?? {}).length;
  process.stdout.write(`check:deploy: ${file}: ${resources} resources, ${findings.length} finding(s)\n`);
  return findings.length === 0 ? 0 : 1;
}

process.exitCode = await main();
