/**
 * The fleetgate command loads only the module of the command it runs (cli/main.ts COMMAND_MODULES):
 * the top-level help lists every command with the summary its module gives, `--version` prints
 * package.json's version, and a command's own help is its module's.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it, vi } from 'vitest';
import { buildProgram, COMMAND_MODULES, main, version } from '../../cli/main';
import { fleetgate } from '../support/cli';

describe('fleetgate commands, loaded on demand', () => {
  it('lists exactly the top-level commands the modules register, with their summaries', async () => {
    const { program } = await buildProgram([], { all: true });
    const registered = Object.fromEntries(
      program.commands
        .filter((command) => !(command as unknown as { _hidden?: boolean })._hidden)
        .map((command) => [command.name(), command.description()]),
    );
    const listed = Object.fromEntries(COMMAND_MODULES.flatMap((module) => Object.entries(module.summaries)));
    expect(listed).toEqual(registered);
    for (const module of COMMAND_MODULES)
      expect(Object.keys(module.summaries).sort()).toEqual([...module.names].sort());
  });

  it('prints the version from package.json', async () => {
    const expected = (
      JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
    ).version;
    expect(version()).toBe(expected);
    const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      expect(await main(['--version'])).toBe(0);
      expect(write.mock.calls.map((call) => String(call[0])).join('')).toContain(expected);
    } finally {
      write.mockRestore();
    }
  });

  it('the fast form the README gives (`node bin/fleetgate.mjs`, not npx) runs the command from the project root', async () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('## The `fleetgate` command'));
    expect(section).toMatch(
      /^`node bin\/fleetgate\.mjs <command>` from the project root, or `npx fleetgate <command>`/m,
    );
    // Exactly that: `node bin/fleetgate.mjs` in the project root (the helper runs it so).
    const result = await fleetgate(['--version']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.trim()).toBe(version());
  });

  it("shows a command's own help (its subcommands) for `<command> --help` and `help <command>`", async () => {
    for (const argv of [
      ['devices', '--help'],
      ['help', 'devices'],
    ]) {
      const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
      try {
        expect(await main(argv)).toBe(0);
        const text = write.mock.calls.map((call) => String(call[0])).join('');
        expect(text).toContain('get [options] <serial>');
        expect(text).toContain('history [options] <serial>');
      } finally {
        write.mockRestore();
      }
    }
  });

  it('registers only the module of the command that runs', async () => {
    const { program } = await buildProgram(['devices', 'get', 'SN-1']);
    expect(program.commands.map((command) => command.name())).toEqual(['devices']);
  });
});
