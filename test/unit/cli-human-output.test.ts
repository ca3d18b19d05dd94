/**
 * What the fleetgate command prints for people: tables with a header and aligned columns, the demo's
 * quarantine tally in the units of `quarantine list`, and a "try next" hint that points at a stack
 * with the demo's devices.
 */
import { userInfo } from 'node:os';
import { describe, expect, it } from 'vitest';
import { deviceTable, historyLine } from '../../cli/commands/devices';
import { deadLetterTable } from '../../cli/commands/dlq';
import { printDemoSummary, printSimulationSummary, tallyLine } from '../../cli/commands/simulate';
import type { Output } from '../../cli/io';
import { operatorName } from '../../cli/operator';
import { plural } from '../../cli/plural';
import { formatTable } from '../../cli/table';
import type { DemoSummary } from '../../local/simulator/demo';

function captured(): { output: Output; lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    output: {
      json: false,
      interactive: false,
      say: (line) => lines.push(line),
      warn: (line) => lines.push(line),
    },
  };
}

const demo: DemoSummary = {
  flows: [],
  skippedFlows: [],
  reportsDir: '/tmp/reports',
  duplicatesCreated: 0,
  lost: 0,
  admittedBadActors: 0,
  ok: true,
  durationMs: 1000,
  quarantine: { devices: 4, certificates: 3 },
};

describe('tables', () => {
  it('pads every column to its widest cell under a header; numbers right-aligned; empty cells —', () => {
    const lines = formatTable(
      [
        { header: 'NAME', value: (row: { name: string; n: number; note?: string }) => row.name },
        { header: 'N', value: (row) => row.n, right: true },
        { header: 'NOTE', value: (row) => row.note },
      ],
      [
        { name: 'a-long-name', n: 7, note: 'x' },
        { name: 'b', n: 1234 },
      ],
    );
    expect(lines).toEqual(['NAME            N  NOTE', 'a-long-name     7  x', 'b            1234  —']);
  });

  it('dlq list: one row per queue under QUEUE / MESSAGES / IN FLIGHT / SOURCE', () => {
    const lines = deadLetterTable([
      {
        queue: 'fleetgate-local-registration-dlq',
        logicalId: 'RegistrationDLQ',
        kind: 'dlq',
        count: 2,
        inFlight: 0,
        source: 'fleetgate-local-registration',
      },
      {
        queue: 'fleetgate-local-rule-errors',
        logicalId: 'RuleErrorsQueue',
        kind: 'rule-errors',
        source: null,
        count: 0,
        inFlight: 1,
      },
    ]);
    expect(lines[0]).toMatch(/^QUEUE\s+MESSAGES\s+IN FLIGHT\s+SOURCE$/);
    const source = lines[0]?.indexOf('SOURCE') ?? -1;
    expect(lines[1]?.slice(source)).toBe('fleetgate-local-registration');
    expect(lines[2]?.slice(source)).toBe('IoT rule errorAction');
  });

  it('dlq list --messages: each message with why it was dead-lettered (the fleetgate-dead-letter-reason attribute)', () => {
    const lines = deadLetterTable([
      {
        queue: 'fleetgate-local-quarantine-dlq',
        logicalId: 'QuarantineDLQ',
        kind: 'dlq',
        count: 2,
        inFlight: 0,
        source: 'fleetgate-local-quarantine',
        messages: [
          {
            messageId: 'm-1',
            body: '{"x":1}',
            receiveCount: 1,
            reason: 'body.reason: must be an UPPER_SNAKE reason code',
          },
          { messageId: 'm-2', body: '{"x":2}', receiveCount: 5 },
        ],
      },
    ]);
    expect(lines).toContain(
      '  fleetgate-local-quarantine-dlq  m-1  reason: body.reason: must be an UPPER_SNAKE reason code  {"x":1}',
    );
    expect(lines.find((line) => line.includes('m-2'))).toContain('reason: (none attached: redriven by SQS');
  });
});

describe('the demo summary', () => {
  it('prints what is in quarantine in the units quarantine list counts', () => {
    const { output, lines } = captured();
    printDemoSummary(output, demo, false);
    expect(lines).toContain(tallyLine({ devices: 4, certificates: 3 }));
    expect(tallyLine({ devices: 4, certificates: 3 })).toMatch(
      /^in quarantine +4 device\(s\), 3 certificate\(s\)/,
    );
  });

  it('with --exit, the hint names a stack that has the demo devices (npm start), not a fresh local up', () => {
    const { output, lines } = captured();
    printDemoSummary(output, demo, true);
    const text = lines.join('\n');
    expect(text).not.toContain('after `npx fleetgate local up`');
    expect(text).toContain('npm start');
    expect(text).toContain('npx fleetgate devices list --state ACTIVE');
  });
});

describe('devices history', () => {
  const quarantined = {
    serial: 'SN-1',
    at: '2026-01-01T00:00:00.000Z',
    id: 'h-1',
    event: 'QUARANTINE',
    from: 'ALLOWLISTED' as const,
    to: 'QUARANTINED' as const,
    actor: 'cli:ana',
    reason: 'OPERATOR_REPORTED',
    detail: { source: 'operator', evidence: { note: 'dropped in the river', operator: 'cli:ana' } },
  };

  it('shows the operator’s free text next to OPERATOR_REPORTED, as release shows its reason', () => {
    expect(historyLine(quarantined)).toBe(
      '2026-01-01T00:00:00.000Z  QUARANTINE ALLOWLISTED → QUARANTINED  by cli:ana (OPERATOR_REPORTED: dropped in the river)',
    );
    expect(historyLine({ ...quarantined, reason: 'STOLEN', detail: {} })).toMatch(/by cli:ana \(STOLEN\)$/);
    expect(historyLine({ ...quarantined, event: 'CREATED', reason: undefined, detail: undefined })).toMatch(
      /by cli:ana$/,
    );
  });
});

describe('the operator named in history entries', () => {
  it('is FLEETGATE_OPERATOR, else $USER / $LOGNAME, else the OS account — never "unknown" for want of $USER', () => {
    expect(operatorName({ FLEETGATE_OPERATOR: 'ana', USER: 'root' })).toBe('ana');
    expect(operatorName({ USER: 'bob' })).toBe('bob');
    expect(operatorName({ LOGNAME: 'carl' })).toBe('carl');
    expect(operatorName({})).not.toBe('unknown');
    expect(operatorName({})).toBe(userInfo().username);
  });
});

describe('devices list', () => {
  const base = {
    attributes: {},
    createdAt: '2026-01-01T00:00:00Z',
    updatedAt: '2026-01-01T00:00:00Z',
    version: 1,
  };
  it('shows the pending certificate of a PROVISIONING device (factory import) instead of —', () => {
    const lines = deviceTable([
      { ...base, serial: 'SN-A', state: 'PROVISIONING', pendingCertificateId: 'a'.repeat(64) },
      { ...base, serial: 'SN-B', state: 'ACTIVE', certificateId: 'b'.repeat(64) },
      { ...base, serial: 'SN-C', state: 'ALLOWLISTED' },
    ] as never);
    expect(lines[1]).toContain(`${'a'.repeat(12)}… (pending)`);
    expect(lines[2]).toContain(`${'b'.repeat(12)}…`);
    expect(lines[2]).not.toContain('(pending)');
    expect(lines[3]).toMatch(/SN-C\s+ALLOWLISTED\s+—\s+—/);
  });
});

describe('plurals', () => {
  it('1 row, 2 rows, 1 delivery, 0 deliveries', () => {
    expect(plural(1, 'row')).toBe('1 row');
    expect(plural(2, 'row')).toBe('2 rows');
    expect(plural(1, 'delivery', 'deliveries')).toBe('1 delivery');
    expect(plural(0, 'delivery', 'deliveries')).toBe('0 deliveries');
  });

  it('the simulation header: 1 clone, 2 clones', () => {
    const { output, lines } = captured();
    printSimulationSummary(
      output,
      {
        flow: 'fleet',
        runId: 'R1',
        devices: 1,
        badActors: { clone: 1, takeover: 2 },
        provisioned: 1,
        active: 1,
        expectedState: 'ACTIVE',
        deniedByReason: {},
        legitimateFailures: {},
        quarantinedByReason: {},
        inQuarantine: { devices: 0, certificates: 0 },
        admittedBadActors: [],
        unquarantinedClones: [],
        redelivered: 0,
        duplicatesCreated: 0,
        lost: 0,
        lostSerials: [],
        devicesPerSecond: 1,
        durationMs: 1000,
        stuck: 0,
        errors: [],
      } as never,
      { tally: false },
    );
    expect(lines[0]).toBe('fleet flow, run R1: 1 device + 1 clone, 2 takeovers');
  });
});
