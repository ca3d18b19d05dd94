/**
 * Run ids of checkpointed runs (expiry sweeps, reconciliations), in a module of its own so that a
 * function naming a run does not load the sweep that produces one.
 */
/** A run id safe as a key and a file name: `<kind>-<yyyymmddThhmmssZ>[-suffix]`. */
export function runIdFor(kind: string, iso: string, suffix?: string): string {
  const stamp = iso
    .replace(/\.\d+Z$/, 'Z')
    .replaceAll('-', '')
    .replaceAll(':', '');
  const id = `${kind}-${stamp}${suffix ? `-${suffix}` : ''}`;
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(id)) throw new TypeError(`run id would be unsafe: ${id}`);
  return id;
}
