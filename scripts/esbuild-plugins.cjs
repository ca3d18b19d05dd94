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
const {
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} = require('node:fs');
const { basename, dirname, extname, join, relative, resolve } = require('node:path');

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
 * `sdk-schema-literal-keys`: AWS SDK v3 clients describe every operation and shape of their service
 * as data in `dist-es/schemas/schemas_0.js` (`export var DescribeThing$ = [9, n0, _DTe, { [_h]: [...] },
 * ...]`, with `const _h = "http";` at the top). The package is `sideEffects: false`, so esbuild would
 * drop the schemas a bundle never references — but an object literal with a computed key (`{ [_h]: … }`)
 * counts as a possible side effect (the key could be an object whose `toString` runs), so every
 * operation is kept and, through it, every shape: all of @aws-sdk/client-iot's ~270 operations
 * (~110 kB minified, evaluated at every cold start) for the handful a function calls. This replaces a
 * computed key that names one of the file's own string constants with that string (`{ "http": … }`,
 * the same object), and esbuild then keeps only the schemas the bundle reaches. A computed key that is
 * not such a constant is left as it is and reported as a warning.
 */
const SDK_SCHEMAS =
  /[\\/]node_modules[\\/]@aws-sdk[\\/]client-[^\\/]+[\\/]dist-es[\\/]schemas[\\/]schemas_\d+\.js$/;

function literalSchemaKeys(source) {
  const constants = new Map();
  for (const match of source.matchAll(/^const ([A-Za-z_$][\w$]*) = ("(?:[^"\\\n]|\\.)*");$/gm)) {
    constants.set(match[1], match[2]);
  }
  const unknown = new Set();
  const contents = source.replace(/([{,]\s*)\[([A-Za-z_$][\w$]*)\]:/g, (all, before, name) => {
    const literal = constants.get(name);
    if (literal === undefined) {
      unknown.add(name);
      return all;
    }
    return `${before}${literal}:`;
  });
  return { contents, unknown: [...unknown] };
}

const sdkSchemaLiteralKeys = {
  name: 'sdk-schema-literal-keys',
  setup(build) {
    build.onLoad({ filter: SDK_SCHEMAS }, (args) => {
      const { contents, unknown } = literalSchemaKeys(readFileSync(args.path, 'utf8'));
      const warnings = unknown.length
        ? [
            {
              text: `computed keys left as they are (not string constants of the file): ${unknown.join(', ')}`,
            },
          ]
        : [];
      return { contents, loader: 'js', warnings };
    });
  },
};

/**
 * `middy-streams-when-streaming`: @middy/core imports `node:stream/web` and `node:stream/promises`
 * at its top for response streaming (`streamifyResponse`), which no fleetgate function uses; loading
 * those two Node modules is ~5 ms of every cold start on this machine (bench/handlers.bench.ts). This
 * rewrites the file so that both are reached only on the streaming path: `ReadableStream` is the
 * global of the same name (Node's `globalThis.ReadableStream` is `node:stream/web`'s class) and
 * `pipeline` comes from a dynamic `import()`. Each rewrite must match exactly once; a middy release
 * that changes these lines fails the build here instead of bundling something half rewritten.
 */
const MIDDY_CORE = /[\\/]@middy[\\/]core[\\/]index\.js$/;
const MIDDY_REWRITES = [
  ['import { pipeline } from "node:stream/promises";\n', ''],
  ['import { ReadableStream } from "node:stream/web";\n', ''],
  ['handlerBody instanceof ReadableStream', 'handlerBody instanceof globalThis.ReadableStream'],
  [
    'await pipeline(handlerStream, responseStream);',
    'await (await import("node:stream/promises")).pipeline(handlerStream, responseStream);',
  ],
];

function middyWithoutStreamImports(source) {
  let contents = source;
  for (const [from, to] of MIDDY_REWRITES) {
    const count = contents.split(from).length - 1;
    if (count !== 1) {
      throw new Error(
        `middy-streams-when-streaming: expected 1 "${from.trim()}" in @middy/core, found ${count}`,
      );
    }
    contents = contents.replace(from, to);
  }
  if (/from\s*["']node:stream\/(web|promises)["']/.test(contents)) {
    throw new Error(
      'middy-streams-when-streaming: @middy/core still imports node:stream/web or node:stream/promises',
    );
  }
  return contents;
}

const middyStreamsWhenStreaming = {
  name: 'middy-streams-when-streaming',
  setup(build) {
    build.onLoad({ filter: MIDDY_CORE }, (args) => ({
      contents: middyWithoutStreamImports(readFileSync(args.path, 'utf8')),
      loader: 'js',
    }));
  },
};

/**
 * `chunks-in-the-function-zip`: with `splitting: true` (serverless.yml), esbuild writes what a
 * function only reaches through a dynamic `import()` — @peculiar/x509 of the certificate functions,
 * the SQS client of the hook's quarantine, the SDK's event streams — as chunks beside handler.mjs
 * instead of inlining it, so a cold start neither parses nor compiles it (bench/handlers.bench.ts).
 * serverless-esbuild zips every file of its build folder into every function's zip except the other
 * handlers, so each function's chunks would ship in all ten zips. This moves them to
 * `__only_<function>/<handler dir>/`, which serverless-esbuild puts only in that function's zip, at
 * `<handler dir>/` (beside handler.mjs, where its `./<chunk>.mjs` imports look; no other path
 * changes). Safe: nothing is dropped or stubbed, the zip holds exactly the files esbuild wrote for
 * the function; test/e2e/package.test.ts unzips every function and checks that every relative
 * import of every module in it is in the same zip and that the handler loads.
 * Without a serverless instance (the bench builds into its own folder) it does nothing.
 */
function chunksInTheFunctionZip(serverless) {
  return {
    name: 'chunks-in-the-function-zip',
    setup(build) {
      const functions = serverless?.service?.functions;
      if (!functions || !build.initialOptions.splitting) return;
      // The outputs' imports, to drop chunks nothing imports (set here, not in serverless.yml, where
      // serverless-esbuild would write the metafile into the build folder and so into the zips).
      build.initialOptions.metafile = true;
      build.onEnd((result) => {
        if (result.errors.length > 0 || !result.metafile) return;
        const { outdir, entryPoints, outExtension, absWorkingDir } = build.initialOptions;
        if (!outdir || !Array.isArray(entryPoints) || entryPoints.length !== 1) return;
        const { aliases, handlerOutputs } = functionsOf(functions, String(entryPoints[0]), outExtension);
        if (aliases.length === 0) return;
        removeUnreachable(result.metafile, absWorkingDir ?? process.cwd(), String(entryPoints[0]));
        moveChunks(outdir, aliases, handlerOutputs);
      });
    },
  };
}

/** The functions of a handler file, and the output names of every handler file in its folder. */
function functionsOf(functions, entryPoint, outExtension) {
  const entry = entryPoint.replaceAll('\\', '/');
  const entryModule = entry.slice(0, entry.length - extname(entry).length);
  const extension = outExtension?.['.js'] ?? '.js';
  const aliases = [];
  const handlerOutputs = new Set();
  for (const [alias, fn] of Object.entries(functions)) {
    if (typeof fn?.handler !== 'string') continue;
    const module = fn.handler.slice(0, fn.handler.lastIndexOf('.'));
    if (module === entryModule) aliases.push(alias);
    if (dirname(module) === dirname(entryModule)) handlerOutputs.add(`${basename(module)}${extension}`);
  }
  return { aliases, handlerOutputs };
}

/**
 * Deletes the chunks no output imports, statically or by `import()`, starting from the entry: esbuild
 * writes a chunk for every dynamic import it scans, also one whose caller tree shaking removed
 * (the hook's bundle has no caller of @peculiar/x509, which shared/certificates.ts imports lazily).
 */
function removeUnreachable(metafile, cwd, entryPoint) {
  const outputs = new Map(
    Object.entries(metafile.outputs)
      .filter(([file]) => !file.endsWith('.map'))
      .map(([file, output]) => [resolve(cwd, file), output]),
  );
  const reachable = new Set();
  const visit = (file) => {
    if (reachable.has(file)) return;
    reachable.add(file);
    for (const imported of outputs.get(file)?.imports ?? []) {
      if (!imported.external) visit(resolve(cwd, imported.path));
    }
  };
  // (A dynamic import's chunk is an entry point of the metafile too: start from the handler's.)
  const entry = resolve(cwd, entryPoint);
  for (const [file, output] of outputs) {
    if (output.entryPoint && resolve(cwd, output.entryPoint) === entry) visit(file);
  }
  if (reachable.size === 0) return;
  for (const file of outputs.keys()) if (!reachable.has(file)) rmSync(file, { force: true });
}

/** Moves every output of `outdir` but the handlers (and maps) to `__only_<alias>/<same folder>/`. */
function moveChunks(outdir, aliases, handlerOutputs) {
  const chunks = readdirSync(outdir).filter(
    (name) => !handlerOutputs.has(name) && !name.endsWith('.map') && statSync(join(outdir, name)).isFile(),
  );
  const buildRoot = outdir.slice(0, outdir.indexOf('.build') + '.build'.length);
  const folder = relative(buildRoot, outdir);
  for (const alias of aliases) {
    const target = join(buildRoot, `__only_${alias}`, folder);
    rmSync(target, { recursive: true, force: true });
    mkdirSync(target, { recursive: true });
    for (const name of chunks) writeFileSync(join(target, name), readFileSync(join(outdir, name)));
  }
  for (const name of chunks) rmSync(join(outdir, name));
}

/**
 * serverless-esbuild calls an exported function with the serverless instance (it needs the
 * functions' names); the bench and scripts/build-cli.mjs call it without.
 */
module.exports = (serverless) => [
  sourceMapsBesideTheZip,
  sdkSchemaLiteralKeys,
  middyStreamsWhenStreaming,
  chunksInTheFunctionZip(serverless),
];
module.exports.sdkSchemaLiteralKeys = sdkSchemaLiteralKeys;
module.exports.literalSchemaKeys = literalSchemaKeys;
module.exports.middyWithoutStreamImports = middyWithoutStreamImports;
module.exports.middyStreamsWhenStreaming = middyStreamsWhenStreaming;
