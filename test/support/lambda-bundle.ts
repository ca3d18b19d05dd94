/**
 * The Lambda bundles as serverless.yml builds them (`custom.esbuild`: esbuild, ESM, splitting, the
 * alias and the plugins), for the handlers benchmark and the tests that check what a cold start
 * loads — one reading of the settings, so neither drifts from the deployed build.
 */
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import type { BuildOptions, Metafile, Plugin } from 'esbuild';
import { projectRoot } from '../../local/paths';
import { loadServerlessConfig } from '../../local/serverless-config';

export interface EsbuildSettings {
  bundle: boolean;
  minify: boolean;
  target: string;
  platform: 'node';
  format: 'esm';
  mainFields: string[];
  banner: { js: string };
  alias?: Record<string, string>;
  splitting?: boolean;
  outputFileExtension?: string;
  /** `./scripts/esbuild-plugins.cjs`: a module exporting esbuild plugins (or a function returning them). */
  plugins?: string;
}

/** serverless.yml's `custom.esbuild`. */
export function serverlessEsbuildSettings(root = projectRoot()): EsbuildSettings {
  const config = loadServerlessConfig(join(root, 'serverless.yml'));
  return (config.custom as { esbuild: EsbuildSettings }).esbuild;
}

/**
 * esbuild options for one function's handler into `outdir`, as serverless-esbuild builds it: with
 * `splitting`, a dynamic import()'s module is a chunk beside the handler, loaded when reached. The
 * plugins that move source maps and chunks into the zip do nothing outside serverless-esbuild's
 * build folder.
 */
export function lambdaBuildOptions(
  settings: EsbuildSettings,
  entry: string,
  outdir: string,
  external: string[] = [],
  root = projectRoot(),
): BuildOptions & { metafile: true } {
  return {
    entryPoints: [entry],
    outdir,
    outExtension: { '.js': settings.outputFileExtension ?? '.js' },
    splitting: settings.splitting ?? false,
    metafile: true,
    absWorkingDir: root,
    bundle: settings.bundle,
    minify: settings.minify,
    target: settings.target,
    platform: settings.platform,
    format: settings.format,
    mainFields: settings.mainFields,
    banner: settings.banner,
    alias: settings.alias ?? {},
    plugins: settings.plugins ? loadPlugins(join(root, settings.plugins)) : [],
    external,
    logLevel: 'silent',
  };
}

/** The plugins module as serverless-esbuild reads it: an array, or a function returning one. */
function loadPlugins(file: string): Plugin[] {
  const exported = createRequire(import.meta.url)(file) as Plugin[] | ((serverless?: unknown) => Plugin[]);
  return typeof exported === 'function' ? exported() : exported;
}

/**
 * The output files a cold start loads — the handler's and, transitively, the chunks it imports
 * statically — or, with `dynamic`, everything it can load (also through `import()`: what the zip
 * carries). Absolute paths; source maps are not outputs here.
 */
export function reachableOutputs(
  metafile: Metafile,
  handler: string,
  options: { dynamic: boolean },
  root = projectRoot(),
): Map<string, Metafile['outputs'][string]> {
  const outputs = Object.entries(metafile.outputs).filter(([file]) => !file.endsWith('.map'));
  const byPath = new Map(outputs.map(([file, output]) => [resolve(root, file), output]));
  const kinds = options.dynamic ? ['import-statement', 'dynamic-import'] : ['import-statement'];
  const seen = new Map<string, Metafile['outputs'][string]>();
  const visit = (file: string) => {
    const output = byPath.get(file);
    if (!output || seen.has(file)) return;
    seen.set(file, output);
    for (const imported of output.imports.filter((i) => !i.external && kinds.includes(i.kind))) {
      visit(resolve(root, imported.path));
    }
  };
  visit(resolve(root, handler));
  return seen;
}
