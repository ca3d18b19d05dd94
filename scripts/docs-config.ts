/**
 * `npm run docs:config`: writes the README's configuration table from shared/config-variables.ts
 * (between the `config:begin` / `config:end` markers). test/unit/config-variables.test.ts fails when
 * the README and the list differ.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../local/paths';
import { configTable } from '../shared/config-variables';

const file = join(projectRoot(), 'README.md');
const text = readFileSync(file, 'utf8');
const begin = text.indexOf('<!-- config:begin');
const end = text.indexOf('<!-- config:end -->');
if (begin < 0 || end < 0) throw new Error('README.md has no config:begin / config:end markers');
const header = text.slice(begin, text.indexOf('\n', begin) + 1);
writeFileSync(file, `${text.slice(0, begin)}${header}${configTable()}\n${text.slice(end)}`);
process.stdout.write('README.md: configuration table written from shared/config-variables.ts\n');
