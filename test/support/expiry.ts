/**
 * The expiry policy the tests, the sweep benchmark and the sample report run with: the configuration's
 * defaults (EXPIRY_WINDOWS_DAYS 7,30; EXPIRY_LOOKBACK_DAYS 90; MAX_CERTIFICATE_AGE_DAYS 825;
 * ROTATION_WINDOW_DAYS 30; a 90-day chart).
 */
import type { ExpiryPolicy } from '../../shared/domain/expiry';

export const DEFAULT_EXPIRY_POLICY: ExpiryPolicy = {
  windowsDays: [7, 30],
  lookbackDays: 90,
  maxAgeDays: 825,
  rotationWindowDays: 30,
  chartDays: 90,
};
