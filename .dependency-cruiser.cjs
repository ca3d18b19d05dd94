/**
 * The layers of docs/architecture.md §5, enforced by `npm run lint` (dependency-cruiser):
 * functions → shared, schemas; adapters → domain; the domain → nothing impure; no Lambda code
 * reaches the local stack, the CLI, tests or benchmarks; nothing imports a function's handler module.
 * test/unit/layers.test.ts breaks each rule on purpose and checks that this file catches it.
 */
module.exports = {
  forbidden: [
    {
      name: 'lambda-code-not-local-or-cli',
      comment:
        'functions/, shared/ and schemas/ are bundled into Lambdas: they must not import the local stack, the CLI, tests or benchmarks',
      severity: 'error',
      from: { path: '^(functions|shared|schemas)/' },
      to: { path: '^(local|cli|test|bench|scripts)/' },
    },
    {
      name: 'domain-is-pure',
      comment:
        'shared/domain/ decides; it imports only other domain modules (no SDK, no node:* modules, no adapters, no schemas)',
      severity: 'error',
      from: { path: '^shared/domain/' },
      to: { pathNot: '^shared/domain/' },
    },
    {
      name: 'schemas-import-only-zod',
      comment: 'schemas/ describe events and messages: only zod, Powertools parser schemas and other schemas',
      severity: 'error',
      from: { path: '^schemas/' },
      to: {
        pathNot: ['^schemas/', '^node_modules/zod/', '^node_modules/@aws-lambda-powertools/parser/'],
      },
    },
    {
      name: 'shared-not-functions',
      comment: 'shared code is used by functions, never the reverse',
      severity: 'error',
      from: { path: '^(shared|schemas)/' },
      to: { path: '^functions/' },
    },
    {
      name: 'one-function-not-another',
      comment: 'a function does not import another function: shared code goes to shared/',
      severity: 'error',
      from: { path: '^functions/([^/]+)/' },
      to: { path: '^functions/', pathNot: '^functions/$1/' },
    },
    {
      name: 'lambda-bundle-no-local-tools',
      comment:
        'what a Lambda bundle pulls in never includes the local tools (MQTT broker and client, local SQS, tsx, the CLI parser, CSV, YAML, CBOR, IAM data)',
      severity: 'error',
      from: { path: '^functions/[^/]+/handler\\.ts$' },
      to: {
        path: 'node_modules/(aedes|mqtt|local-aws-sqs|tsx|commander|csv-parse|yaml|cborg|@cloud-copilot|esbuild|osls)/',
        reachable: true,
      },
    },
    {
      name: 'no-circular',
      comment: 'no import cycles in Lambda code',
      severity: 'error',
      from: { path: '^(functions|shared|schemas)/' },
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(\\.fleetgate|\\.serverless|\\.esbuild|dist)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.mts', '.js', '.mjs', '.cjs', '.json'],
    },
  },
};
