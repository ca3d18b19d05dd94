/**
 * esbuild plugins of the Lambda bundles (serverless.yml `custom.esbuild.plugins`).
 *
 * `source-maps-beside-the-zip`: esbuild writes each bundle's source map (`sourcemap: external`, no
 * `sourceMappingURL` comment in the bundle); this moves it out of the build directory before
 * serverless-esbuild zips it, to `.serverless/sourcemaps/<function path>/handler.mjs.map`. The zips
 * carry only the minified code (the hook's 5 s budget pays for nothing a request does not use:
 * `--enable-source-maps` parsed a 3.5–5 MB map at the first error, ~200 ms, and slowed the import);
 * the maps are kept as build artifacts for mapping a logged stack trace back to TypeScript
 * (README, "Deploying": `npx source-map-cli` or any source-map tool with the frame's line:column).
 */
const { mkdirSync, readFileSync, readdirSync, renameSync, statSync } = require('node:fs');
const { join, relative } = require('node:path');

const sourceMapsBesideTheZip = {
  name: 'source-maps-beside-the-zip',
  setup(build) {
    build.onEnd((result) => {
      if (result.errors.length > 0) return;
      const outdir = build.initialOptions.outdir;
      if (!outdir) return;
      const buildRoot = outdir.slice(0, outdir.indexOf('.build') + '.build'.length);
      const service = join(buildRoot, '..', '..');
      for (const file of walk(outdir)) {
        if (!file.endsWith('.map')) continue;
        const target = join(service, '.serverless', 'sourcemaps', relative(buildRoot, file));
        mkdirSync(join(target, '..'), { recursive: true });
        renameSync(file, target);
      }
    });
  },
};

function* walk(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* walk(path);
    else yield path;
  }
}

/**
 * `import { z } from 'zod'` (@aws-lambda-powertools/parser's schemas) uses zod's namespace as a
 * value, which keeps every export of zod in the bundle — all its locales (~260 kB) — in the chunk
 * every function and CLI command that reads the store loads. Those modules only ever write `z.<name>`, so the namespace
 * import (`import * as z`, the same object for property access) lets esbuild drop what is unused.
 * (Only powertools' files are looked at: a plugin reading every file doubles the build's time; the
 * check after the build says when another package brings the locales back.)
 */
const zodNamespaceImports = {
  name: 'zod-namespace-imports',
  setup(build) {
    build.onLoad({ filter: /[\\/]node_modules[\\/]@aws-lambda-powertools[\\/].*\.js$/ }, (args) => {
      const source = readFileSync(args.path, 'utf8');
      if (!/import \{ z \} from ['"]zod['"]/.test(source)) return undefined;
      return {
        contents: source.replace(/import \{ z \} from (['"])zod\1/g, "import * as z from 'zod'"),
        loader: 'js',
      };
    });
  },
};

module.exports = [sourceMapsBesideTheZip, zodNamespaceImports];
module.exports.zodNamespaceImports = zodNamespaceImports;
