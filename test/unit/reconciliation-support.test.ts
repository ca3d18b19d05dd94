import { describe, expect, it } from 'vitest';
import { TokenBucket } from '../../shared/aws/token-bucket';
import { summarize, toReconcileCsv } from '../../shared/reconcile/reconcile-inventory';

/** A bucket on a fake clock: `sleep` advances time instead of waiting. */
function fakeBucket(rate: number, capacity?: number) {
  let now = 0;
  const sleeps: number[] = [];
  const bucket = new TokenBucket(
    rate,
    capacity,
    () => now,
    async (ms) => {
      sleeps.push(ms);
      now += ms;
    },
  );
  return { bucket, sleeps, now: () => now };
}

describe('TokenBucket', () => {
  it('lets a full bucket burst, then paces at the rate', async () => {
    // Prepare
    const { bucket, now } = fakeBucket(5);
    // Act
    for (let i = 0; i < 5; i += 1) await bucket.take();
    const afterBurst = now();
    for (let i = 0; i < 10; i += 1) await bucket.take();
    // Assess
    expect(afterBurst).toBe(0);
    expect(now()).toBeGreaterThanOrEqual(2000);
    expect(now()).toBeLessThanOrEqual(2010);
  });

  it('serves concurrent callers in order without handing out more tokens than it has', async () => {
    // Prepare
    const { bucket, now } = fakeBucket(10, 1);
    const order: number[] = [];
    // Act
    await Promise.all(Array.from({ length: 20 }, (_, i) => bucket.take().then(() => order.push(i))));
    // Assess
    expect(order).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(now()).toBeGreaterThanOrEqual(1900);
  });

  it('refuses a rate that is not positive', () => {
    expect(() => new TokenBucket(0)).toThrow(RangeError);
  });
});

describe('reconciliation report', () => {
  it('writes one CSV row per finding and neutralises formula cells', () => {
    const csv = toReconcileCsv({
      drift: [
        { key: 'THING_UNKNOWN_TO_STORE#=cmd', kind: 'THING_UNKNOWN_TO_STORE', thingName: '=cmd' },
        {
          key: 'STORE_CERTIFICATE_GONE#ab',
          kind: 'STORE_CERTIFICATE_GONE',
          certificateId: 'ab',
          serial: 'SN,1',
          role: 'current',
          storeState: 'ACTIVE',
          iotState: 'NOT_FOUND',
        },
      ],
    });
    expect(csv.split('\r\n')).toEqual([
      'kind,certificateId,thingName,serial,role,storeState,iotState',
      "THING_UNKNOWN_TO_STORE,,'=cmd,,,,",
      'STORE_CERTIFICATE_GONE,ab,,"SN,1",current,ACTIVE,NOT_FOUND',
      '',
    ]);
  });

  it('summarises totals into API calls per certificate and statuses', () => {
    const summary = summarize(
      {
        invocations: 3,
        totals: {
          certificatesListed: 500,
          'status.ACTIVE': 490,
          'status.INACTIVE': 10,
          'iot.ListCertificates': 2,
          'iot.ListThingPrincipals': 498,
          units: 9,
        },
      },
      [],
    );
    expect(summary).toMatchObject({
      certificatesListed: 500,
      certificatesByStatus: { ACTIVE: 490, INACTIVE: 10 },
      apiCalls: { ListCertificates: 2, ListThingPrincipals: 498 },
      apiCallsPerCertificate: 1,
      invocations: 3,
      units: 9,
      drift: 0,
    });
  });
});
