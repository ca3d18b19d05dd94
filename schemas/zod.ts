/**
 * The zod every schema of fleetgate is written with: zod 4's `mini` build, configured with zod's
 * English messages (the classic build configures them on import; `mini` leaves the choice to the
 * application, and its issues would otherwise all read "Invalid input").
 *
 * Why `mini`: the classic build's schemas carry their whole method API and its JSON Schema code, and
 * every Lambda parses events and store items with zod, so each cold start paid for it. Measured on
 * the same ~200 schemas, bundled and minified, in fresh Node 20 processes: classic 95 KB and 46 ms
 * to load, mini 22 KB and 29 ms; per function, ~11–15 ms less cold load (README, "Cold start of the
 * bundles"). The rules and messages are zod's own in both builds: `test/unit/zod-mini.test.ts` builds
 * each kind of rule the schemas use both ways and requires the same answers.
 * @see https://zod.dev/packages/mini
 */
import { en } from 'zod/locales';
import { config } from 'zod/mini';

config(en());

// `export *`, not the `z` namespace object: a bundler then keeps only the parts a module uses.
export * from 'zod/mini';
