/**
 * The allowlist import under concurrency, on DynamoDB Local: an import whose read found a serial
 * absent must not overwrite the device another writer created (and moved on) in the meantime, and
 * concurrent duplicate imports create each serial — and its CREATED history entry — exactly once.
 * The interleavings are forced: each import talks through a document client whose writes are held
 * at a gate until the test opens it.
 */
import { Readable } from 'node:stream';
import {
  BatchWriteCommand,
  type DynamoDBDocumentClient,
  PutCommand,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { importAllowlistCsv } from '../../../shared/allowlist/import-csv';
import { type AllowlistEntry, DEFAULT_SERIAL_PATTERN } from '../../../shared/allowlist/rows';
import { type ImportContext, importAllowlistEntries } from '../../../shared/store/allowlist-import';
import { StoreClient } from '../../../shared/store/client';
import { ProvisioningStore } from '../../../shared/store/provisioning-store';
import { NOW, pendingCertificate } from '../../support/devices';
import { useTestTable } from '../../support/dynamo';

const table = useTestTable('allowlist-race');

const WRITES = [BatchWriteCommand, TransactWriteCommand, PutCommand, UpdateCommand];

/**
 * A document client that holds every write (`BatchWriteItem`, `TransactWriteItems`, `PutItem`,
 * `UpdateItem`) until `open()`; reads pass. `reached` resolves when the first write is held. With
 * `withoutOldImages`, a cancelled transaction's reasons lose their old images (DynamoDB may omit
 * them), so the importer has to read the devices again.
 */
function gatedClient(
  doc: DynamoDBDocumentClient,
  options: { withoutOldImages?: boolean } = {},
): {
  doc: DynamoDBDocumentClient;
  reached: Promise<void>;
  open: () => void;
} {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  let reach!: () => void;
  const reached = new Promise<void>((resolve) => {
    reach = resolve;
  });
  const gated = new Proxy(doc, {
    get(target, property, receiver) {
      if (property !== 'send') return Reflect.get(target, property, receiver);
      return async (command: unknown) => {
        if (WRITES.some((write) => command instanceof write)) {
          reach();
          await opened;
        }
        return sendWithout(target, command, options.withoutOldImages === true);
      };
    },
  });
  return { doc: gated, reached, open };
}

/** Sends `command`; a cancelled transaction's old images are dropped when `dropImages`. */
async function sendWithout(
  doc: DynamoDBDocumentClient,
  command: unknown,
  dropImages: boolean,
): Promise<unknown> {
  try {
    return await (Reflect.apply(doc.send, doc, [command]) as Promise<unknown>);
  } catch (error) {
    const reasons = (error as { CancellationReasons?: Array<{ Item?: unknown }> }).CancellationReasons;
    if (dropImages) for (const reason of reasons ?? []) delete reason.Item;
    throw error;
  }
}

function context(actor: string): ImportContext {
  let ids = 0;
  return {
    now: NOW,
    actor,
    idFor: (serial) => {
      ids += 1;
      return `${actor}-${serial}-${ids}`;
    },
  };
}

const certificate = pendingCertificate;

async function createdEntries(serial: string): Promise<number> {
  return (await table.store.history(serial)).filter((entry) => entry.event === 'CREATED').length;
}

describe('allowlist import races', () => {
  it.each([
    ['', {}],
    [' (the cancellation without old images: read again)', { withoutOldImages: true }],
  ])(
    'an import whose read found a serial absent keeps the binding a concurrent import and the hook made since%s',
    async (name, options) => {
      const run = name ? 'READ' : 'IMAGE';
      const bound = `RACE-${run}-0001`;
      const changed = `RACE-${run}-0002`;
      const entries: AllowlistEntry[] = [
        { serial: bound, batch: 'B1', attributes: {} },
        { serial: changed, batch: 'B2', attributes: {} },
      ];
      // Import A reads both serials (absent), then its write is held.
      const gate = gatedClient(table.doc, options);
      const importA = importAllowlistEntries(
        new StoreClient(gate.doc, table.tableName),
        entries,
        context('import-a'),
      );
      await gate.reached;
      // Meanwhile import B creates both (the second with another batch) and the hook binds the first.
      const countsB = await table.store.importAllowlistEntries(
        [entries[0] as AllowlistEntry, { serial: changed, batch: 'B1', attributes: {} }],
        context('import-b'),
      );
      expect(countsB).toEqual({ imported: 2, updated: 0, unchanged: 0 });
      const device = await table.store.getDevice(bound);
      if (!device) throw new Error('import B did not create the device');
      const binding = await table.store.bindCertificate({
        serial: bound,
        event: 'PROVISION',
        device,
        certificate: certificate(`race-cert-${run}`),
        publicKeyHash: `race-key-${run}`,
        now: NOW,
        history: { id: 'bind', actor: 'hook' },
        set: { thingName: `thing-${bound}` },
      });
      expect(binding.status).toBe('applied');
      // Import A's write goes through now.
      gate.open();
      const countsA = await importA;

      expect(await table.store.getDevice(bound)).toMatchObject({
        state: 'PROVISIONING',
        version: 2,
        pendingCertificateId: `race-cert-${run}`,
        thingName: `thing-${bound}`,
        batch: 'B1',
      });
      // (Entries of the same instant are ordered by id: compared as sets.)
      expect((await table.store.history(bound)).map((entry) => entry.event).sort()).toEqual([
        'CREATED',
        'PROVISION',
      ]);
      // The serial B created with batch B1 is an existing, changed serial for A: its allowlist fields
      // are updated (state untouched), with one history entry of its own.
      expect(await table.store.getDevice(changed)).toMatchObject({
        state: 'ALLOWLISTED',
        version: 2,
        batch: 'B2',
      });
      expect((await table.store.history(changed)).map((entry) => entry.event).sort()).toEqual([
        'ALLOWLIST_UPDATED',
        'CREATED',
      ]);
      expect(countsA).toEqual({ imported: 0, updated: 1, unchanged: 1 });
    },
  );

  it('concurrent duplicate imports of the same entries create each serial once, with one CREATED entry', async () => {
    const entries: AllowlistEntry[] = Array.from({ length: 100 }, (_, i) => ({
      serial: `RACE-DUP-${String(i).padStart(4, '0')}`,
      productLine: 'gateway',
      batch: 'B1',
      attributes: { color: 'blue' },
    }));
    // Four imports read all 100 serials absent before any of them writes.
    const gates = Array.from({ length: 4 }, () => gatedClient(table.doc));
    const imports = gates.map((gate, i) =>
      importAllowlistEntries(new StoreClient(gate.doc, table.tableName), entries, context(`dup-${i}`)),
    );
    await Promise.all(gates.map((gate) => gate.reached));
    for (const gate of gates) gate.open();
    const counts = await Promise.all(imports);

    const created = await Promise.all(entries.map(({ serial }) => createdEntries(serial)));
    expect(created.filter((n) => n !== 1)).toEqual([]);
    for (const { serial } of entries) {
      expect(await table.store.getDevice(serial)).toMatchObject({ state: 'ALLOWLISTED', version: 1 });
    }
    expect(counts.reduce((sum, c) => sum + c.imported, 0)).toBe(100);
    expect(counts.reduce((sum, c) => sum + c.updated, 0)).toBe(0);
    for (const c of counts) expect(c.imported + c.unchanged).toBe(100);
  });

  it('concurrent imports of the same file (several chunks) create each serial once, with one CREATED entry', async () => {
    const serials = Array.from({ length: 250 }, (_, i) => `RACE-FILE-${String(i).padStart(4, '0')}`);
    const csv = `serial,productLine,batch\n${serials.map((serial) => `${serial},gateway,B1`).join('\n')}\n`;
    // Three imports of the file; each one's writes wait until all three have read their first chunk.
    const gates = Array.from({ length: 3 }, () => gatedClient(table.doc));
    const runs = gates.map((gate, i) =>
      importAllowlistCsv(Readable.from([Buffer.from(csv)]), {
        store: new ProvisioningStore(gate.doc, table.tableName),
        serialPattern: new RegExp(DEFAULT_SERIAL_PATTERN, 'u'),
        now: NOW,
        actor: `file-${i}`,
        newId: (() => {
          let ids = 0;
          return () => {
            ids += 1;
            return `file-${i}-${ids}`;
          };
        })(),
        concurrency: 4,
      }),
    );
    await Promise.all(gates.map((gate) => gate.reached));
    for (const gate of gates) gate.open();
    const summaries = await Promise.all(runs);

    const created = await Promise.all(serials.map(createdEntries));
    expect(created.filter((n) => n !== 1)).toEqual([]);
    expect(summaries.reduce((sum, s) => sum + s.imported, 0)).toBe(250);
    for (const s of summaries) {
      expect(s).toMatchObject({ rows: 250, updated: 0, rejected: [] });
      expect(s.imported + s.unchanged).toBe(250);
    }
  });

  it('a file whose first chunk is new and later chunks are not: imported, updated and unchanged exact', async () => {
    const serial = (i: number) => `MIXED-${String(i).padStart(4, '0')}`;
    const row = (i: number, batch: string) => `${serial(i)},gateway,${batch}`;
    const csv = (rows: string[]) => `serial,productLine,batch\n${rows.join('\n')}\n`;
    const options = (actor: string) => ({
      store: table.store,
      serialPattern: new RegExp(DEFAULT_SERIAL_PATTERN, 'u'),
      now: NOW,
      actor,
      newId: (() => {
        let ids = 0;
        return () => {
          ids += 1;
          return `${actor}-${ids}`;
        };
      })(),
      concurrency: 1,
    });
    // 100–199 imported before (100–149 with the batch the file now changes).
    const before = Array.from({ length: 100 }, (_, j) => row(100 + j, j < 50 ? 'OLD' : 'B1'));
    await importAllowlistCsv(Readable.from([Buffer.from(csv(before))]), options('mixed-first'));
    const rows = Array.from({ length: 300 }, (_, i) => row(i, 'B1'));
    const summary = await importAllowlistCsv(Readable.from([Buffer.from(csv(rows))]), options('mixed'));

    expect(summary).toMatchObject({ rows: 300, imported: 200, updated: 50, unchanged: 50, rejected: [] });
    const created = await Promise.all(rows.map((_, i) => createdEntries(serial(i))));
    expect(created.filter((n) => n !== 1)).toEqual([]);
    expect(await table.store.getDevice(serial(120))).toMatchObject({ batch: 'B1', version: 2 });
  });
});
