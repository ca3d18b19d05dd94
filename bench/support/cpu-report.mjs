// Preloaded (`node --import`) into a measured process: on exit it appends the process's own CPU time
// (user + system, getrusage) and peak RSS to the file named by FLEETGATE_CPU_REPORT.
import { appendFileSync } from 'node:fs';

const file = process.env.FLEETGATE_CPU_REPORT;
if (file) {
  process.on('exit', () => {
    const usage = process.resourceUsage();
    appendFileSync(
      file,
      `${JSON.stringify({ cpuMs: (usage.userCPUTime + usage.systemCPUTime) / 1000, maxRssKb: usage.maxRSS })}\n`,
    );
  });
}
