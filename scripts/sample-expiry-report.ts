/**
 * Writes a sample expiry report (HTML, CSV, JSON) built from a synthetic fleet, with a previous
 * report to compare with — for the screenshot in docs/ (scripts/screenshot-report.sh).
 * Usage: tsx scripts/sample-expiry-report.ts <out-dir>
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  addToChart,
  buildExpiryReport,
  classifyCertificate,
  DAY_MS,
  type ExpiryCandidate,
  formatIso,
} from '../shared/domain/expiry';
import { toReportCsv, toReportHtml, toReportJson } from '../shared/reports/expiry-report-files';
import { DEFAULT_EXPIRY_POLICY } from '../test/support/expiry';

const NOW = Date.parse('2026-11-24T06:00:00.000Z');
const POLICY = DEFAULT_EXPIRY_POLICY;

/** A deterministic pseudo-random sequence, so the picture does not change between runs. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (Math.imul(state, 1_103_515_245) + 12_345) >>> 0;
    return state / 2 ** 32;
  };
}

function fleet(now: number): ExpiryCandidate[] {
  const next = random(8);
  const out: ExpiryCandidate[] = [];
  for (let i = 0; i < 400; i += 1) {
    // A batch provisioned around the same time a year ago expires in a wave in weeks 5–7.
    const wave = i < 120 ? 35 + next() * 14 : -5 + next() * 95;
    const serial = `ESP32-${(0xa000 + i).toString(16).toUpperCase()}`;
    out.push({
      certificateId: Array.from({ length: 8 }, () =>
        Math.floor(next() * 2 ** 32)
          .toString(16)
          .padStart(8, '0'),
      ).join(''),
      kind: 'DEVICE',
      status: 'ACTIVE',
      serial,
      thingName: `fg-${serial}`,
      notBefore: formatIso(NOW - (i % 50 === 0 ? 860 : 300) * DAY_MS),
      notAfter: formatIso(NOW + wave * DAY_MS),
    });
  }
  out.push({
    certificateId: 'f'.repeat(64),
    kind: 'CLAIM',
    status: 'ACTIVE',
    notBefore: formatIso(NOW - 700 * DAY_MS),
    notAfter: formatIso(NOW + 12 * DAY_MS),
  });
  return out.map((candidate) => ({
    ...candidate,
    notAfter: formatIso(Date.parse(candidate.notAfter) + (now - NOW)),
  }));
}

function report(runId: string, now: number, previous?: ReturnType<typeof buildExpiryReport>) {
  // Yesterday lacked a few newly provisioned devices; today a few were rotated already.
  const certificates = fleet(NOW).filter((_c, i) => (now === NOW ? i % 23 !== 5 : i % 9 !== 0));
  const chart: number[] = [];
  for (const certificate of certificates) addToChart(chart, certificate, now, POLICY);
  return buildExpiryReport({
    runId,
    now,
    policy: POLICY,
    atRisk: certificates.flatMap((c) => classifyCertificate(c, now, POLICY) ?? []),
    chartCounts: chart,
    itemsRead: certificates.length,
    readUnits: 6.5,
    ...(previous ? { previous } : {}),
  });
}

const out = process.argv[2] ?? '.fleetgate/sample-report';
await mkdir(out, { recursive: true });
const yesterday = report('scheduled-20261123T060000Z', NOW - DAY_MS);
const today = report('scheduled-20261124T060000Z', NOW, yesterday);
await writeFile(join(out, 'expiry-report.html'), toReportHtml(today));
await writeFile(join(out, 'expiry-report.csv'), toReportCsv(today));
await writeFile(join(out, 'expiry-report.json'), toReportJson(today));
process.stdout.write(`${join(out, 'expiry-report.html')}\n`);
