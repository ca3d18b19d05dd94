/**
 * The expiry report as files: JSON (the machine format, also read back as "the previous report"),
 * CSV (RFC 4180, spreadsheet-injection safe) and one self-contained HTML page (inline CSS and an
 * inline SVG chart; no script, no external asset).
 */

import { AtRiskCertificateSchema } from '../../schemas/at-risk-certificate';
import * as z from '../../schemas/zod';
import { type AtRiskCertificate, type ExpiryReport, notAskedReason } from '../domain/expiry';
import { csvCell } from './csv';

export { csvCell };

export const CSV_COLUMNS = [
  'class',
  'serial',
  'thingName',
  'deviceState',
  'certificateId',
  'kind',
  'status',
  'notBefore',
  'notAfter',
  'daysLeft',
  'ageDays',
] as const;

/** Rows beyond this are left out of the HTML table (the CSV and JSON always hold all of them). */
export const HTML_TABLE_LIMIT = 5000;

export function toReportJson(report: ExpiryReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}

/** The parts of a previous report the next one compares with. */
const PreviousReportSchema = z.object({
  format: z.literal('fleetgate.expiry-report/1'),
  runId: z.string(),
  generatedAt: z.string(),
  summary: z.looseObject({ counts: z.record(z.string(), z.number()) }),
  atRisk: z.array(AtRiskCertificateSchema),
  change: z.optional(z.looseObject({ previousRunId: z.optional(z.string()) })),
});

export type PreviousReport = Pick<ExpiryReport, 'runId' | 'generatedAt' | 'atRisk' | 'summary'> & {
  /** The report this one was compared with. */
  previousRunId?: string;
};

/**
 * Parses a report JSON written by `toReportJson` (enough of it to compare with).
 * @throws TypeError when the text is not such a report.
 */
export function parsePreviousReport(text: string): PreviousReport {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new TypeError('previous report: not JSON', { cause: error });
  }
  const parsed = PreviousReportSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new TypeError(`previous report: ${issue?.path.join('.') ?? ''} ${issue?.message ?? 'invalid'}`);
  }
  const { change, ...rest } = parsed.data;
  const report = rest as unknown as PreviousReport;
  return change?.previousRunId ? { ...report, previousRunId: change.previousRunId } : report;
}

/**
 * RFC 4180 CSV (CRLF, quotes doubled, fields quoted when they hold `"`, `,`, CR or LF). Text cells
 * that a spreadsheet would run as a formula (starting with = + - @, tab or CR) get a leading `'`;
 * numbers the report computes itself are written as numbers.
 */
export function toReportCsv(report: ExpiryReport): string {
  const lines = [CSV_COLUMNS.map((name) => csvCell(name)).join(',')];
  for (const entry of report.atRisk) {
    lines.push(CSV_COLUMNS.map((column) => csvCell(entry[column] ?? '')).join(','));
  }
  return `${lines.join('\r\n')}\r\n`;
}

const CLASS_COLOURS: Record<string, string> = { EXPIRED: '#b42318', TOO_OLD: '#6941c6' };
const WINDOW_COLOURS = ['#d92d20', '#f79009', '#eaaa08', '#66c61c'];
const LATER_COLOUR = '#1570ef';

function classColour(name: string, windows: readonly number[]): string {
  const fixed = CLASS_COLOURS[name];
  if (fixed) return fixed;
  const days = Number(/^EXPIRING_(\d+)D$/.exec(name)?.[1]);
  const index = [...windows].sort((a, b) => a - b).indexOf(days);
  return WINDOW_COLOURS[Math.min(Math.max(index, 0), WINDOW_COLOURS.length - 1)] ?? '#f79009';
}

function classLabel(name: string): string {
  if (name === 'EXPIRED') return 'Expired';
  if (name === 'TOO_OLD') return 'Older than max age';
  const days = /^EXPIRING_(\d+)D$/.exec(name)?.[1];
  return days ? `Expiring ≤ ${days} d` : name;
}

/** One self-contained HTML page: summary, weekly chart, change since the previous report, table. */
export function toReportHtml(report: ExpiryReport): string {
  const windows = report.policy.windowsDays;
  const delta = report.change.countsDelta;
  const cards = Object.entries(report.summary.counts)
    .map(([name, count]) => {
      const change = delta[name] ?? 0;
      const sign = change > 0 ? `▲ ${change}` : change < 0 ? `▼ ${-change}` : '±0';
      return `<div class="card" data-class="${esc(name)}" style="border-top-color:${classColour(name, windows)}">
  <div class="label">${esc(classLabel(name))}</div>
  <div class="count" data-count="${esc(name)}">${count}</div>
  <div class="delta${change > 0 ? ' up' : change < 0 ? ' down' : ''}">${sign} since previous</div>
</div>`;
    })
    .join('\n');
  const shown = report.atRisk.slice(0, HTML_TABLE_LIMIT);
  const rows = shown.map((entry) => tableRow(entry, windows)).join('\n');
  const more =
    report.atRisk.length > shown.length
      ? `<p class="note">Showing the first ${shown.length} of ${report.atRisk.length}; the CSV and JSON hold all of them.</p>`
      : '';
  const change = report.change;
  const previous = change.previousRunId
    ? `Compared with the report of ${esc(change.previousGeneratedAt ?? '')} (run ${esc(change.previousRunId)}).`
    : 'No previous report: everything at risk is new.';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fleetgate — certificate expiry report ${esc(report.generatedAt.slice(0, 10))}</title>
<style>
  :root { color-scheme: light; --ink: #101828; --muted: #475467; --line: #eaecf0; --bg: #f9fafb; }
  * { box-sizing: border-box; }
  body { margin: 0; padding: 32px 40px; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); background: var(--bg); }
  h1 { font-size: 22px; margin: 0 0 4px; }
  h2 { font-size: 16px; margin: 28px 0 10px; }
  .meta, .note { color: var(--muted); margin: 0; }
  .cards { display: flex; flex-wrap: wrap; gap: 12px; margin-top: 20px; }
  .card { background: #fff; border: 1px solid var(--line); border-top: 4px solid; border-radius: 8px; padding: 12px 16px; min-width: 170px; }
  .card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
  .card .count { font-size: 30px; font-weight: 700; }
  .card .delta { font-size: 12px; color: var(--muted); }
  .card .delta.up { color: #b42318; } .card .delta.down { color: #067647; }
  .panel { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 16px; }
  svg text { font: 11px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; fill: var(--muted); }
  svg .value { fill: var(--ink); font-weight: 600; }
  .changes { display: grid; grid-template-columns: repeat(5, minmax(0, 1fr)); gap: 12px; }
  .changes div { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; }
  .changes b { display: block; font-size: 20px; }
  table { width: 100%; border-collapse: collapse; background: #fff; border: 1px solid var(--line); }
  th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); white-space: nowrap; }
  th { background: #f2f4f7; font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  td.id { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
  .badge { display: inline-block; padding: 1px 8px; border-radius: 999px; color: #fff; font-size: 12px; font-weight: 600; }
  .state { display: inline-block; padding: 1px 8px; border-radius: 4px; font-size: 12px; font-weight: 600; background: #f2f4f7; color: var(--muted); }
  .state.held { background: #fef3f2; color: #b42318; }
</style>
</head>
<body>
<h1>Certificate expiry report</h1>
<p class="meta">Generated ${esc(report.generatedAt)} · run ${esc(report.runId)} · windows ${windows.map((d) => `${d} d`).join(', ')} · max age ${report.policy.maxAgeDays} d · look-back ${report.policy.lookbackDays} d · ${report.summary.itemsRead} index items read (${report.summary.readUnits} RCU)</p>
<div class="cards">
${cards}
<div class="card" data-class="ROTATION" style="border-top-color:#1570ef">
  <div class="label">Rotation candidates</div>
  <div class="count" data-count="ROTATION">${report.summary.rotationCandidates}</div>
  <div class="delta">${report.summary.rotationCandidates === 1 ? 'device' : 'devices'} within ${report.policy.rotationWindowDays} d or too old${heldNote(report)}</div>
</div>
</div>
<h2>Expiries per week, next ${report.policy.chartDays} days</h2>
<div class="panel">${chartSvg(report)}</div>
<h2>Change since the previous report</h2>
<p class="note">${previous}</p>
<div class="changes" style="margin-top:10px">
  <div data-change="new">New at risk<b>${change.newAtRisk.length}</b></div>
  <div data-change="resolved">Resolved<b>${change.resolved.length}</b></div>
  <div data-change="expired">Expired since<b>${change.expired.length}</b></div>
  <div data-change="reclassified">Class changed<b>${change.reclassified.length}</b></div>
  <div data-change="agedOut">Left the look-back<b>${change.agedOut.length}</b></div>
</div>
<h2>Certificates at risk (${report.atRisk.length})</h2>
${more}
<table>
<thead><tr><th>Serial</th><th>Thing name</th><th>Device state</th><th>Certificate id</th><th>Kind</th><th>notAfter</th><th>Days left</th><th>Class</th></tr></thead>
<tbody>
${rows || '<tr><td colspan="8">Nothing at risk.</td></tr>'}
</tbody>
</table>
</body>
</html>
`;
}

/** How many at-risk device certificates belong to devices that are not asked to rotate, and why. */
function heldNote(report: ExpiryReport): string {
  const counts = { held: 0, 'not connected': 0 };
  for (const [state, count] of Object.entries(report.summary.byDeviceState ?? {})) {
    const reason = notAskedReason(state);
    if (reason) counts[reason] += count;
  }
  const parts = [
    ...(counts.held > 0 ? [`${counts.held} on quarantined, revoked or decommissioned devices`] : []),
    ...(counts['not connected'] > 0
      ? [`${counts['not connected']} on devices that have never connected (no connection to rotate over)`]
      : []),
  ];
  return parts.length > 0 ? `; ${parts.join(', ')} not asked` : '';
}

function tableRow(entry: AtRiskCertificate, windows: readonly number[]): string {
  const id = entry.certificateId;
  const shortId = id.length > 16 ? `${id.slice(0, 12)}…${id.slice(-4)}` : id;
  return `<tr data-class="${esc(entry.class)}"><td>${esc(entry.serial ?? '—')}</td><td>${esc(entry.thingName ?? '—')}</td>${deviceStateCell(entry.deviceState)}<td class="id" title="${esc(id)}">${esc(shortId)}</td><td>${esc(entry.kind)}</td><td title="${esc(entry.notAfter)}">${esc(shortTime(entry.notAfter))}</td><td class="num">${entry.daysLeft}</td><td><span class="badge" style="background:${classColour(entry.class, windows)}">${esc(classLabel(entry.class))}</span></td></tr>`;
}

/**
 * The device's state; devices not asked to rotate (quarantined, revoked, decommissioned, never
 * connected) are marked: they are listed only.
 */
function deviceStateCell(state: string | undefined): string {
  if (state === undefined) return '<td data-device-state="">—</td>';
  const held = notAskedReason(state) ? ' held' : '';
  return `<td data-device-state="${esc(state)}"><span class="state${held}">${esc(state)}</span></td>`;
}

/** A bar chart of live certificates expiring per week, drawn as inline SVG. */
function chartSvg(report: ExpiryReport): string {
  const { counts, weekStarts } = report.chart;
  const width = 1080;
  const height = 300;
  const left = 48;
  const right = 16;
  const top = 34;
  const bottom = 48;
  const plotWidth = width - left - right;
  const plotHeight = height - top - bottom;
  const max = Math.max(1, ...counts);
  const step = niceStep(max);
  const ceiling = Math.ceil(max / step) * step;
  const slot = plotWidth / Math.max(1, counts.length);
  const barWidth = Math.max(4, slot * 0.68);
  const parts: string[] = [];
  for (let tick = 0; tick <= ceiling; tick += step) {
    const y = top + plotHeight - (tick / ceiling) * plotHeight;
    parts.push(
      `<line x1="${left}" x2="${width - right}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" stroke="#eaecf0"/>`,
      `<text x="${left - 8}" y="${(y + 4).toFixed(1)}" text-anchor="end">${tick}</text>`,
    );
  }
  counts.forEach((count, i) => {
    const barHeight = (count / ceiling) * plotHeight;
    const x = left + i * slot + (slot - barWidth) / 2;
    const y = top + plotHeight - barHeight;
    // A week takes the colour of the most urgent window it reaches into.
    const window = [...report.policy.windowsDays].sort((a, b) => a - b).find((days) => i * 7 < days);
    const colour =
      window === undefined ? LATER_COLOUR : classColour(`EXPIRING_${window}D`, report.policy.windowsDays);
    parts.push(
      `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${barWidth.toFixed(1)}" height="${barHeight.toFixed(1)}" rx="3" fill="${colour}"><title>${esc(weekStarts[i] ?? '')}: ${count}</title></rect>`,
      `<text class="value" x="${(x + barWidth / 2).toFixed(1)}" y="${(y - 6).toFixed(1)}" text-anchor="middle">${count}</text>`,
      `<text x="${(x + barWidth / 2).toFixed(1)}" y="${top + plotHeight + 18}" text-anchor="middle">${esc((weekStarts[i] ?? '').slice(5))}</text>`,
    );
  });
  const legend = [
    ...[...report.policy.windowsDays]
      .sort((a, b) => a - b)
      .map((days) => ({
        label: `reaches into the ${days}-day window`,
        colour: classColour(`EXPIRING_${days}D`, report.policy.windowsDays),
      })),
    { label: 'later', colour: LATER_COLOUR },
  ];
  let legendX = width - right;
  for (const item of [...legend].reverse()) {
    const textWidth = item.label.length * 6 + 24;
    legendX -= textWidth;
    parts.push(
      `<rect x="${legendX}" y="4" width="10" height="10" rx="2" fill="${item.colour}"/>`,
      `<text x="${legendX + 14}" y="13">${esc(item.label)}</text>`,
    );
  }
  parts.push(
    `<line x1="${left}" x2="${width - right}" y1="${top + plotHeight}" y2="${top + plotHeight}" stroke="#98a2b3"/>`,
    `<text x="${left + plotWidth / 2}" y="${height - 8}" text-anchor="middle">week starting (UTC, month-day)</text>`,
  );
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="100%" role="img" aria-label="Certificates expiring per week">${parts.join('')}</svg>`;
}

/** `2026-11-20 07:12 UTC` from an ISO time (the full value is in the cell's title and the CSV). */
function shortTime(iso: string): string {
  return /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/.test(iso) ? `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC` : iso;
}

function niceStep(max: number): number {
  const rough = max / 5;
  const magnitude = 10 ** Math.floor(Math.log10(Math.max(rough, 1)));
  for (const factor of [1, 2, 5, 10]) if (factor * magnitude >= rough) return Math.max(1, factor * magnitude);
  return 10 * magnitude;
}

function esc(value: string): string {
  return value
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}
