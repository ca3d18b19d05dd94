/**
 * Every key of the single provisioning table is built here, and nowhere else.
 *
 * Access patterns (docs/architecture.md §3):
 * | pattern                                    | key                                                        |
 * |--------------------------------------------|------------------------------------------------------------|
 * | device record (the allowlist entry)        | PK=DEVICE#<serial>            SK=DEVICE                    |
 * | device history, one Query per device       | PK=DEVICE#<serial>            SK=EVENT#<iso time>#<id>     |
 * | certificate record                         | PK=CERT#<certificateId>       SK=CERT                      |
 * | one public key = one device                | PK=PUBKEY#<sha256(SPKI) hex>  SK=PUBKEY                    |
 * | claim-certificate rate window (TTL)        | PK=CLAIM#<claimId>#<minute>   SK=CLAIM                     |
 * | exactly-once effects (TTL)                 | PK=DEDUP#<event identity>     SK=DEDUP                     |
 * | presence sessions of a certificate (TTL)   | PK=PRINCIPAL#<certificateId>  SK=SESSION#<sessionId>       |
 * | latest presence of a client id (TTL)       | PK=CLIENT#<clientId>          SK=PRESENCE                  |
 * | DUPLICATE_CLIENTID disconnects (TTL)       | PK=CLIENT#<clientId>          SK=DUPLICATE#<ms>#<sessionId>|
 * | certificates by expiry (ExpiryIndex)       | GSI1PK=EXPIRY#<yyyy-mm-dd>#<shard>  GSI1SK=<notAfter>#<id> |
 * | devices by state (StateIndex)              | GSI2PK=STATE#<state>#<shard>        GSI2SK=<serial>        |
 * | quarantined certificates of unknown devices (StateIndex) | GSI2PK=QUARANTINED_CERT#<shard> GSI2SK=<id> |
 * | device certificates by issue month (IssuedIndex) | GSI3PK=ISSUED#<yyyy-mm>#<shard> GSI3SK=<notBefore>#<id>  |
 * | CA and claim certificates (IssuedIndex)    | GSI3PK=ANCHOR#<CA|CLAIM>            GSI3SK=<notBefore>#<id> |
 * | rotation request (one device, one new key) | PK=ROTATION#<serial>          SK=REQUEST#<sha256(SPKI)>    |
 * | certificates due for retirement (StateIndex) | GSI2PK=RETIRING_CERT#<shard>  GSI2SK=<dueAt>#<id>         |
 * | expiry sweep checkpoint (TTL)              | PK=SWEEP#<runId>              SK=CHECKPOINT                |
 * | expiry sweep results, one item per page    | PK=SWEEP#<runId>              SK=PAGE#<seq>                |
 * | reconciliation checkpoint (TTL)            | PK=RECONCILE#<runId>          SK=CHECKPOINT                |
 * | reconciliation findings, one item per page | PK=RECONCILE#<runId>          SK=PAGE#<seq>                |
 * | certificate listed by a reconciliation (TTL) | PK=RECONCILE#<runId>#CERT#<certificateId> SK=SEEN        |
 * | installer may install a serial / a batch   | PK=INSTALLER#<installer>      SK=BIND#SERIAL#<serial> / BIND#BATCH#<batch> |
 * | installer's temporary claims per minute (TTL) | PK=INSTALLER#<installer>   SK=RATE#<minute>             |
 * | temporary claim issued to an installer     | PK=TEMPCLAIM#<claimCertificateId> SK=TEMPCLAIM             |
 *
 * The IssuedIndex finds certificates older than a maximum age without a Scan (AWS-issued
 * certificates expire in 2049, so age matters). Month buckets keep the number of Queries of a
 * look-back small; CA and claim certificates are few and live in their own unsharded partitions
 * so the sweep always sees all of them. Certificates written before the index existed have no
 * GSI3 keys until they are written again.
 *
 * Index partitions are sharded (`SHARDS`) so that a million devices in one state, or a batch of
 * certificates issued on one day, never make a hot partition.
 */

export const SHARDS = 8;
export const EXPIRY_INDEX = 'ExpiryIndex';
export const STATE_INDEX = 'StateIndex';
export const ISSUED_INDEX = 'IssuedIndex';

export type Key = { PK: string; SK: string };

/** FNV-1a 32-bit: a stable, fast spread of ids over shards. */
export function shardOf(value: string, shards = SHARDS): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < value.length; i += 1) {
    hash ^= value.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % shards;
}

export const keys = {
  device: (serial: string): Key => ({ PK: `DEVICE#${serial}`, SK: 'DEVICE' }),
  history: (serial: string, at: string, id: string): Key => ({
    PK: `DEVICE#${serial}`,
    SK: `EVENT#${at}#${id}`,
  }),
  historyPrefix: 'EVENT#',
  certificate: (certificateId: string): Key => ({ PK: `CERT#${certificateId}`, SK: 'CERT' }),
  publicKey: (publicKeyHash: string): Key => ({ PK: `PUBKEY#${publicKeyHash}`, SK: 'PUBKEY' }),
  claimWindow: (claimCertificateId: string, minute: string): Key => ({
    PK: `CLAIM#${claimCertificateId}#${minute}`,
    SK: 'CLAIM',
  }),
  dedup: (identity: string): Key => ({ PK: `DEDUP#${identity}`, SK: 'DEDUP' }),
  /** One presence session of a certificate (clone detection: one certificate, two client ids). */
  principalSession: (certificateId: string, sessionIdentifier: string): Key => ({
    PK: `PRINCIPAL#${certificateId}`,
    SK: `SESSION#${sessionIdentifier}`,
  }),
  principalSessionPrefix: 'SESSION#',
  /** The newest presence event seen for a client id (ordering by versionNumber and timestamp). */
  clientPresence: (clientId: string): Key => ({ PK: `CLIENT#${clientId}`, SK: 'PRESENCE' }),
  /** One DUPLICATE_CLIENTID disconnect of a client id, sortable by time within the partition. */
  duplicateClientId: (clientId: string, atMs: number, sessionIdentifier: string): Key => ({
    PK: `CLIENT#${clientId}`,
    SK: `DUPLICATE#${String(atMs).padStart(15, '0')}#${sessionIdentifier}`,
  }),
  duplicateClientIdBound: (atMs: number): string => `DUPLICATE#${String(atMs).padStart(15, '0')}`,
  expiryIndex: (notAfterIso: string, certificateId: string) => ({
    GSI1PK: expiryPartition(notAfterIso.slice(0, 10), shardOf(certificateId)),
    GSI1SK: `${notAfterIso}#${certificateId}`,
  }),
  issuedIndex: (notBeforeIso: string, certificateId: string, kind: string) => ({
    GSI3PK:
      kind === 'DEVICE'
        ? issuedPartition(notBeforeIso.slice(0, 7), shardOf(certificateId))
        : anchorPartition(kind),
    GSI3SK: `${notBeforeIso}#${certificateId}`,
  }),
  sweepCheckpoint: (runId: string): Key => ({ PK: `SWEEP#${runId}`, SK: 'CHECKPOINT' }),
  sweepPage: (runId: string, seq: number): Key => ({
    PK: `SWEEP#${runId}`,
    SK: `PAGE#${String(seq).padStart(8, '0')}`,
  }),
  sweepPagePrefix: 'PAGE#',
  /**
   * The table's newest completed sweep (the next run's baseline). `SWEEP#` with an empty run id: no
   * run id is empty, so it never collides with a run's own items.
   */
  sweepLatest: (): Key => ({ PK: 'SWEEP#', SK: 'LATEST' }),
  reconcileCheckpoint: (runId: string): Key => ({ PK: `RECONCILE#${runId}`, SK: 'CHECKPOINT' }),
  reconcilePage: (runId: string, seq: number): Key => ({
    PK: `RECONCILE#${runId}`,
    SK: `PAGE#${String(seq).padStart(8, '0')}`,
  }),
  reconcilePagePrefix: 'PAGE#',
  /** One partition per certificate: a run writes one per listed certificate, so none is hot. */
  reconcileSeen: (runId: string, certificateId: string): Key => ({
    PK: `RECONCILE#${runId}#CERT#${certificateId}`,
    SK: 'SEEN',
  }),
  stateIndex: (state: string, serial: string) => ({
    GSI2PK: statePartition(state, shardOf(serial)),
    GSI2SK: serial,
  }),
  /** One rotation request: claimed before CreateCertificateFromCsr, so a repeat issues nothing new. */
  rotationRequest: (serial: string, publicKeyHash: string): Key => ({
    PK: `ROTATION#${serial}`,
    SK: `REQUEST#${publicKeyHash}`,
  }),
  /**
   * A certificate with retirement work due at `dueAt` (deactivate, delete after the grace period,
   * revoke after an aborted rotation) shares the StateIndex, in its own partitions.
   */
  retirementIndex: (dueAt: string, certificateId: string) => ({
    GSI2PK: retirementPartition(shardOf(certificateId)),
    GSI2SK: `${dueAt}#${certificateId}`,
  }),
  /**
   * What an installer may install (provisioning by trusted user): one serial, or every serial of a
   * batch. The installer id (a JWT subject) is URI-encoded, so no `#` of its own can split the key.
   */
  installerBinding: (installer: string, scope: 'SERIAL' | 'BATCH', value: string): Key => ({
    PK: `INSTALLER#${encodeURIComponent(installer)}`,
    SK: `BIND#${scope}#${value}`,
  }),
  installerBindingPrefix: 'BIND#',
  installerPartition: (installer: string): string => `INSTALLER#${encodeURIComponent(installer)}`,
  /** An installer's temporary claims in one minute (atomic counter, TTL). */
  installerRate: (installer: string, minute: string): Key => ({
    PK: `INSTALLER#${encodeURIComponent(installer)}`,
    SK: `RATE#${minute}`,
  }),
  /** The record of a temporary claim (CreateProvisioningClaim): who asked, for which serial, until when. */
  temporaryClaim: (claimCertificateId: string): Key => ({
    PK: `TEMPCLAIM#${claimCertificateId.toLowerCase()}`,
    SK: 'TEMPCLAIM',
  }),
  /** A certificate quarantined without a known device shares the StateIndex, in its own partitions. */
  quarantinedCertificateIndex: (certificateId: string) => ({
    GSI2PK: quarantinedCertificatePartition(shardOf(certificateId)),
    GSI2SK: certificateId,
  }),
};

export function retirementPartition(shard: number): string {
  return `RETIRING_CERT#${shard}`;
}

export function quarantinedCertificatePartition(shard: number): string {
  return `QUARANTINED_CERT#${shard}`;
}

export function expiryPartition(day: string, shard: number): string {
  return `EXPIRY#${day}#${shard}`;
}

export function issuedPartition(month: string, shard: number): string {
  return `ISSUED#${month}#${shard}`;
}

export function anchorPartition(kind: string): string {
  return `ANCHOR#${kind}`;
}

export function statePartition(state: string, shard: number): string {
  return `STATE#${state}#${shard}`;
}

/** The minute bucket (`2026-11-24T14:05`) a claim counter belongs to. */
export function minuteBucket(isoTime: string): string {
  return isoTime.slice(0, 16);
}

/** Every UTC day (`yyyy-mm-dd`) touched by [fromIso, toIso], in order. */
export function daysBetween(fromIso: string, toIso: string): string[] {
  const days: string[] = [];
  const end = toIso.slice(0, 10);
  let cursor = Date.parse(`${fromIso.slice(0, 10)}T00:00:00.000Z`);
  for (let day = fromIso.slice(0, 10); day <= end; day = new Date(cursor).toISOString().slice(0, 10)) {
    days.push(day);
    cursor += 86_400_000;
  }
  return days;
}

/** Every UTC month (`yyyy-mm`) touched by [fromIso, toIso], in order. */
export function monthsBetween(fromIso: string, toIso: string): string[] {
  const months: string[] = [];
  const end = toIso.slice(0, 7);
  let year = Number(fromIso.slice(0, 4));
  let month = Number(fromIso.slice(5, 7));
  for (let current = fromIso.slice(0, 7); current <= end; ) {
    months.push(current);
    month += 1;
    if (month > 12) {
      month = 1;
      year += 1;
    }
    current = `${String(year).padStart(4, '0')}-${String(month).padStart(2, '0')}`;
  }
  return months;
}
