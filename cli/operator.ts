/**
 * Who the operator is, as the history and quarantine records name them (`cli:<name>`):
 * `FLEETGATE_OPERATOR` when set (a shared machine, CI, a service account), else the login name
 * ($USER, $LOGNAME, then the OS account, so a shell without $USER — cron, containers — still names one).
 */
import { userInfo } from 'node:os';

export function operatorName(env: NodeJS.ProcessEnv = process.env): string {
  const named = [env.FLEETGATE_OPERATOR, env.USER, env.LOGNAME].find((value) => value?.trim());
  if (named) return named.trim();
  try {
    const { username } = userInfo();
    if (username) return username;
  } catch {
    // no account entry for this uid (some containers)
  }
  return 'unknown';
}
