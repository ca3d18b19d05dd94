import { parse } from 'csv-parse/sync';
import { describe, expect, it } from 'vitest';
import { DEVICE_STATES } from '../../../shared/domain/device-state';
import {
  type AtRiskCertificate,
  addToChart,
  askedToRotate,
  buildExpiryReport,
  classifyCertificate,
  compareReports,
  DAY_MS,
  type ExpiryCandidate,
  formatIso,
  notAskedReason,
  parseIso,
  rotationCandidates,
} from '../../../shared/domain/expiry';
import { ROTATABLE_STATES } from '../../../shared/domain/rotation-rules';
import {
  CSV_COLUMNS,
  csvCell,
  parsePreviousReport,
  toReportCsv,
  toReportHtml,
  toReportJson,
} from '../../../shared/reports/expiry-report-files';
import { shardOf } from '../../../shared/store/keys';
import { DEFAULT_EXPIRY_POLICY } from '../../support/expiry';

// Frozen: one minute before midnight, so "+1 day" crosses a UTC day (and index partition) boundary.
const NOW_ISO = '2026-11-24T23:59:00.000Z';
const NOW = Date.parse(NOW_ISO);
const POLICY = DEFAULT_EXPIRY_POLICY;
const MS = 1;

function cert(id: string, notAfterMs: number, overrides: Partial<ExpiryCandidate> = {}): ExpiryCandidate {
  return {
    certificateId: id,
    kind: 'DEVICE',
    status: 'ACTIVE',
    serial: `SN-${id}`,
    thingName: `thing-${id}`,
    notBefore: formatIso(NOW - 100 * DAY_MS),
    notAfter: formatIso(notAfterMs),
    ...overrides,
  };
}

describe('classifyCertificate', () => {
  it.each([
    ['expired a millisecond ago', NOW - MS, 'EXPIRED', -1],
    ['expiring at exactly now (notAfter is still valid)', NOW, 'EXPIRING_7D', 0],
    ['just inside the 7-day window', NOW + 7 * DAY_MS - MS, 'EXPIRING_7D', 6],
    ['exactly on the 7-day boundary', NOW + 7 * DAY_MS, 'EXPIRING_30D', 7],
    ['just inside the 30-day window', NOW + 30 * DAY_MS - MS, 'EXPIRING_30D', 29],
    ['exactly on the 30-day boundary', NOW + 30 * DAY_MS, undefined, 30],
    ['expired 89 days ago', NOW - 89 * DAY_MS, 'EXPIRED', -89],
    ['expiring one minute after now, across midnight', NOW + 60_000, 'EXPIRING_7D', 0],
  ])('%s', (_name, notAfter, expected, daysLeft) => {
    // Act
    const found = classifyCertificate(cert('a', notAfter), NOW, POLICY);
    // Assess
    expect(found?.class).toBe(expected);
    if (found) expect(found.daysLeft).toBe(daysLeft);
  });

  it('reports a certificate older than the maximum age on both sides of the boundary', () => {
    const limit = NOW - 825 * DAY_MS;
    const far = NOW + 9000 * DAY_MS; // AWS-issued: expires in 2049
    expect(
      classifyCertificate(cert('old', far, { notBefore: formatIso(limit - MS) }), NOW, POLICY)?.class,
    ).toBe('TOO_OLD');
    expect(
      classifyCertificate(cert('young', far, { notBefore: formatIso(limit) }), NOW, POLICY),
    ).toBeUndefined();
  });

  it('gives the most urgent class when a certificate is both old and expiring', () => {
    const found = classifyCertificate(
      cert('both', NOW + 3 * DAY_MS, { notBefore: formatIso(NOW - 2000 * DAY_MS) }),
      NOW,
      POLICY,
    );
    expect(found?.class).toBe('EXPIRING_7D');
  });

  it('ignores certificates that can no longer authenticate', () => {
    for (const status of ['RETIRED', 'REVOKED', 'INACTIVE', 'DELETED']) {
      expect(classifyCertificate(cert('x', NOW - DAY_MS, { status }), NOW, POLICY)).toBeUndefined();
    }
  });

  it('classifies the same way whatever shard the id lands in', () => {
    const ids = Array.from({ length: 64 }, (_, i) => `id-${i}`);
    expect(new Set(ids.map((id) => shardOf(id))).size).toBe(8);
    for (const id of ids)
      expect(classifyCertificate(cert(id, NOW + DAY_MS), NOW, POLICY)?.class).toBe('EXPIRING_7D');
  });

  it('classifies CA and claim certificates like device certificates', () => {
    expect(
      classifyCertificate(cert('ca', NOW - DAY_MS, { kind: 'CA', serial: undefined }), NOW, POLICY)?.class,
    ).toBe('EXPIRED');
    expect(classifyCertificate(cert('claim', NOW + DAY_MS, { kind: 'CLAIM' }), NOW, POLICY)?.kind).toBe(
      'CLAIM',
    );
  });
});

describe('parseIso / formatIso', () => {
  it('agree with Date on instants across day, month, year and leap boundaries', () => {
    for (const iso of [
      '2026-11-24T23:59:59.999Z',
      '2028-02-29T00:00:00.000Z',
      '1999-12-31T23:59:59.000Z',
      '2049-12-31T23:59:59.000Z',
    ]) {
      expect(parseIso(iso)).toBe(Date.parse(iso));
      expect(formatIso(Date.parse(iso))).toBe(new Date(iso).toISOString());
    }
    expect(parseIso('2026-11-24T12:00:00+02:00')).toBe(Date.parse('2026-11-24T10:00:00Z'));
    expect(parseIso('yesterday')).toBeUndefined();
  });
});

describe('addToChart', () => {
  it('counts per week from now, the last week clipped at 90 days', () => {
    const counts: number[] = [];
    addToChart(counts, cert('w0', NOW), NOW, POLICY);
    addToChart(counts, cert('w0b', NOW + 7 * DAY_MS - MS), NOW, POLICY);
    addToChart(counts, cert('w1', NOW + 7 * DAY_MS), NOW, POLICY);
    addToChart(counts, cert('w12', NOW + 90 * DAY_MS - MS), NOW, POLICY);
    addToChart(counts, cert('out', NOW + 90 * DAY_MS), NOW, POLICY);
    addToChart(counts, cert('past', NOW - MS), NOW, POLICY);
    expect(counts[0]).toBe(2);
    expect(counts[1]).toBe(1);
    expect(counts[12]).toBe(1);
    expect(counts.reduce((a, b) => a + (b ?? 0), 0)).toBe(4);
  });
});

function sampleReport(previous?: Parameters<typeof buildExpiryReport>[0]['previous']) {
  const candidates = [
    cert('e1', NOW - 2 * DAY_MS),
    cert('e2', NOW - 40 * DAY_MS, { serial: '=HYPERLINK("http://evil")', thingName: 'a,"quoted"\nthing' }),
    cert('s1', NOW + 2 * DAY_MS),
    cert('s2', NOW + 6 * DAY_MS, { serial: '-5+3', thingName: '@SUM(A1)' }),
    cert('m1', NOW + 20 * DAY_MS),
    cert('o1', NOW + 3000 * DAY_MS, { notBefore: formatIso(NOW - 900 * DAY_MS) }),
    cert('claim', NOW + 10 * DAY_MS, { kind: 'CLAIM', serial: undefined, thingName: undefined }),
  ];
  const chart: number[] = [];
  for (const candidate of candidates) addToChart(chart, candidate, NOW, POLICY);
  const atRisk = candidates.flatMap((c) => classifyCertificate(c, NOW, POLICY) ?? []);
  return buildExpiryReport({
    runId: 'test-run',
    now: NOW,
    policy: POLICY,
    atRisk: [...atRisk, ...atRisk.slice(0, 2)], // read twice: kept once
    chartCounts: chart,
    itemsRead: 9,
    readUnits: 1.5,
    ...(previous ? { previous } : {}),
  });
}

describe('buildExpiryReport and its files', () => {
  it('counts each class once and lists rotation candidates', () => {
    const report = sampleReport();
    expect(report.summary.counts).toEqual({ EXPIRED: 2, EXPIRING_7D: 2, EXPIRING_30D: 2, TOO_OLD: 1 });
    expect(report.summary.atRisk).toBe(7);
    expect(report.summary.byKind).toEqual({ DEVICE: 6, CLAIM: 1, CA: 0 });
    expect(report.rotation.map((r) => r.certificateId)).toEqual(['s1', 's2', 'm1', 'o1']);
    expect(rotationCandidates(report.atRisk, { rotationWindowDays: 7 }).map((r) => r.certificateId)).toEqual([
      's1',
      's2',
      'o1',
    ]);
    expect(report.chart.counts).toHaveLength(13);
    expect(report.chart.weekStarts[0]).toBe('2026-11-24');
  });

  it('agrees on the counts in JSON, CSV and HTML', () => {
    // Prepare
    const report = sampleReport();
    // Act
    const json = JSON.parse(toReportJson(report)) as typeof report;
    const rows = parse(toReportCsv(report), { columns: true, record_delimiter: '\r\n' }) as Array<
      Record<string, string>
    >;
    const html = toReportHtml(report);
    // Assess
    const csvCounts: Record<string, number> = {};
    for (const row of rows) csvCounts[row.class ?? ''] = (csvCounts[row.class ?? ''] ?? 0) + 1;
    const htmlCards = Object.fromEntries(
      [...html.matchAll(/data-count="([A-Z0-9_]+)">(\d+)</g)].map((m) => [m[1], Number(m[2])]),
    );
    const htmlRows: Record<string, number> = {};
    for (const m of html.matchAll(/<tr data-class="([A-Z0-9_]+)">/g))
      htmlRows[m[1] ?? ''] = (htmlRows[m[1] ?? ''] ?? 0) + 1;
    const nonZero = Object.fromEntries(Object.entries(json.summary.counts).filter(([, n]) => n > 0));
    expect(csvCounts).toEqual(nonZero);
    expect(htmlRows).toEqual(nonZero);
    const { ROTATION, ...cards } = htmlCards;
    expect(cards).toEqual(json.summary.counts);
    expect(ROTATION).toBe(json.summary.rotationCandidates);
    expect(rows).toHaveLength(json.atRisk.length);
  });

  it('writes RFC 4180 CSV that spreadsheets cannot run as formulas', () => {
    const csv = toReportCsv(sampleReport());
    expect(csv.split('\r\n')[0]).toBe(CSV_COLUMNS.join(','));
    const rows = parse(csv, { columns: true }) as Array<Record<string, string>>;
    const e2 = rows.find((row) => row.certificateId === 'e2');
    expect(e2?.serial).toBe(`'=HYPERLINK("http://evil")`);
    expect(e2?.thingName).toBe('a,"quoted"\nthing');
    expect(e2?.daysLeft).toBe('-40'); // a number the report computed is not a formula
    const s2 = rows.find((row) => row.certificateId === 's2');
    expect(s2?.serial).toBe("'-5+3");
    expect(s2?.thingName).toBe("'@SUM(A1)");
    expect(csvCell('+1')).toBe("'+1");
    expect(csvCell('say "hi"')).toBe('"say ""hi"""');
  });

  it('renders one self-contained HTML page with an inline SVG chart and escaped text', () => {
    const html = toReportHtml(sampleReport());
    expect(html).toContain('<svg');
    expect(html).not.toMatch(/<script|<link|src="http|href="http|@import|url\(/);
    expect(html).not.toContain('=HYPERLINK("http://evil")');
    expect(html).toContain('=HYPERLINK(&quot;http://evil&quot;)');
  });

  it('tells new, resolved, reclassified and aged-out certificates apart from the previous report', () => {
    // Prepare: the previous report had s1 as 30-day, a resolved device and one expired long ago.
    const before = sampleReport();
    const previous = parsePreviousReport(
      toReportJson({
        ...before,
        runId: 'previous-run',
        atRisk: [
          {
            ...(before.atRisk.find((e) => e.certificateId === 's1') as (typeof before.atRisk)[number]),
            class: 'EXPIRING_30D',
          },
          {
            // Still valid, read by this run and not at risk: retired or revoked before it expired.
            ...(before.atRisk[0] as (typeof before.atRisk)[number]),
            certificateId: 'renewed',
            class: 'EXPIRING_7D',
            notAfter: formatIso(NOW + 3 * DAY_MS),
          },
          {
            ...(before.atRisk[0] as (typeof before.atRisk)[number]),
            certificateId: 'ancient',
            class: 'EXPIRED',
            notAfter: formatIso(NOW - 91 * DAY_MS),
          },
        ],
        summary: { ...before.summary, counts: { EXPIRED: 1, EXPIRING_7D: 1, EXPIRING_30D: 1, TOO_OLD: 0 } },
      }),
    );
    // Act
    const report = sampleReport(previous);
    // Assess
    expect(report.change.previousRunId).toBe('previous-run');
    expect(report.change.newAtRisk.sort()).toEqual(['claim', 'e1', 'e2', 'm1', 'o1', 's2']);
    expect(report.change.resolved).toEqual(['renewed']);
    expect(report.change.agedOut).toEqual(['ancient']);
    expect(report.change.expired).toEqual([]);
    expect(report.change.reclassified).toEqual([
      { certificateId: 's1', from: 'EXPIRING_30D', to: 'EXPIRING_7D' },
    ]);
    expect(report.change.countsDelta).toEqual({ EXPIRED: 1, EXPIRING_7D: 1, EXPIRING_30D: 1, TOO_OLD: 1 });
  });
});

describe("compareReports: what became of the previous report's certificates", () => {
  // The previous run at NOW listed these; the next run looks at LATER, when none of them is at risk
  // any more (the what-if `fleetgate sweep --now <six months on>` of the trial).
  const LATER = NOW + 180 * DAY_MS;
  const previousEntry = (id: string, notAfterMs: number, overrides: Partial<ExpiryCandidate> = {}) => {
    const entry = classifyCertificate(cert(id, notAfterMs, overrides), NOW, POLICY);
    if (!entry) throw new Error(`${id} is not at risk at NOW`);
    return entry;
  };
  const previous = {
    runId: 'run-at-now',
    generatedAt: NOW_ISO,
    atRisk: [
      previousEntry('soon-a', NOW + 5 * DAY_MS),
      previousEntry('soon-b', NOW + 5 * DAY_MS),
      previousEntry('rotated', NOW + 5 * DAY_MS),
      previousEntry('month', NOW + 20 * DAY_MS),
      previousEntry('long-expired', NOW - 10 * DAY_MS),
      previousEntry('claim-soon', NOW + 5 * DAY_MS, { kind: 'CLAIM', serial: undefined }),
      previousEntry('old', NOW + 3000 * DAY_MS, { notBefore: formatIso(NOW - 900 * DAY_MS) }),
    ],
    summary: { counts: { EXPIRED: 1, EXPIRING_7D: 4, EXPIRING_30D: 1, TOO_OLD: 1 } },
  };

  it('counts a certificate whose notAfter has passed as expired, never as resolved', () => {
    // Act: nothing at risk at LATER; the device of "rotated" has had another certificate since.
    const change = compareReports(
      [],
      {},
      LATER,
      POLICY,
      previous,
      new Map([
        ['SN-soon-a', 'soon-a'],
        ['SN-rotated', 'rotated-successor'],
      ]),
    );
    // Assess
    expect(change.expired).toEqual(['claim-soon', 'month', 'soon-a', 'soon-b']);
    expect(change.resolved).toEqual(['rotated']);
    expect(change.agedOut).toEqual(['long-expired', 'old']);
  });

  it('counts a certificate as resolved only while it is still valid or its device has another', () => {
    // Act: a day later, "soon-a" and "old" are gone from the report (retired while valid).
    const stillThere = previous.atRisk.filter(
      (e) => !['soon-a', 'old', 'long-expired'].includes(e.certificateId),
    );
    const change = compareReports(stillThere, {}, NOW + DAY_MS, POLICY, previous);
    // Assess: "long-expired" is still inside the look-back, so it was read and is no longer live.
    expect(change.resolved).toEqual(['long-expired', 'old', 'soon-a']);
    expect(change.expired).toEqual([]);
    expect(change.agedOut).toEqual([]);
  });

  it('shows the expired ones in the JSON and HTML report', () => {
    const report = buildExpiryReport({
      runId: 'what-if',
      now: LATER,
      policy: POLICY,
      atRisk: [],
      chartCounts: [],
      itemsRead: 0,
      readUnits: 0,
      previous,
    });
    const json = JSON.parse(toReportJson(report)) as typeof report;
    expect(json.change.expired).toHaveLength(5);
    expect(json.change.resolved).toEqual([]);
    expect(toReportHtml(report)).toContain('<div data-change="expired">Expired since<b>5</b></div>');
  });
});

describe('askedToRotate', () => {
  // The rotation flow accepts a request only from an ACTIVE or ROTATING device (rotation-rules, rule
  // 3): the sweep asks no other device, and says why it holds each one back.
  it.each([
    ['ACTIVE', true, undefined],
    ['ROTATING', true, undefined],
    ['ALLOWLISTED', false, 'not connected'],
    ['PROVISIONING', false, 'not connected'],
    ['QUARANTINED', false, 'held'],
    ['REVOKED', false, 'held'],
    ['DECOMMISSIONED', false, 'held'],
  ] as const)('%s → asked %s (%s)', (state, asked, reason) => {
    expect(askedToRotate(state)).toBe(asked);
    expect(notAskedReason(state)).toBe(reason);
  });

  it('covers every device state, and agrees with what rotation accepts', () => {
    for (const state of DEVICE_STATES) {
      expect(askedToRotate(state)).toBe((ROTATABLE_STATES as readonly string[]).includes(state));
    }
    // A certificate whose serial has no device record is listed and asked, as before.
    expect(askedToRotate(undefined)).toBe(true);
  });

  it('counts the devices not asked to rotate, by reason, once per device', () => {
    // Prepare: two never-connected devices (one with two certificates at risk), a quarantined one.
    const entry = (id: string, serial: string, deviceState: string) => ({
      ...(classifyCertificate(cert(id, NOW + 3 * DAY_MS, { serial }), NOW, POLICY) as AtRiskCertificate),
      deviceState,
    });
    // Act
    const report = buildExpiryReport({
      runId: 'not-asked',
      now: NOW,
      policy: POLICY,
      atRisk: [
        entry('b1', 'SN-BOX-1', 'PROVISIONING'),
        entry('b1-pending', 'SN-BOX-1', 'PROVISIONING'),
        entry('b2', 'SN-BOX-2', 'ALLOWLISTED'),
        entry('q', 'SN-HELD', 'QUARANTINED'),
        entry('a', 'SN-LIVE', 'ACTIVE'),
      ],
      chartCounts: [],
      itemsRead: 5,
      readUnits: 0,
    });
    // Assess
    expect(report.summary.notAskedToRotate).toEqual({ held: 1, neverConnected: 2 });
    expect(report.summary.byDeviceState).toEqual({
      PROVISIONING: 2,
      ALLOWLISTED: 1,
      QUARANTINED: 1,
      ACTIVE: 1,
    });
    expect(report.summary.rotationCandidates).toBe(1);
    expect(toReportHtml(report)).toContain('<div class="delta">device within 30 d or too old;');
  });

  it('never lists a device that has not connected yet as a rotation candidate', () => {
    const candidate = (deviceState: string) =>
      rotationCandidates(
        [
          {
            certificateId: `c-${deviceState}`,
            kind: 'DEVICE',
            serial: `SN-${deviceState}`,
            status: 'ACTIVE',
            notBefore: '2026-01-01T00:00:00.000Z',
            notAfter: '2027-01-01T00:00:00.000Z',
            daysLeft: 3,
            ageDays: 340,
            class: 'EXPIRING_7D',
            deviceState,
          },
        ],
        { rotationWindowDays: 30 },
      ).map((entry) => entry.serial);
    expect(candidate('ACTIVE')).toEqual(['SN-ACTIVE']);
    expect(candidate('PROVISIONING')).toEqual([]);
    expect(candidate('ALLOWLISTED')).toEqual([]);
  });
});
