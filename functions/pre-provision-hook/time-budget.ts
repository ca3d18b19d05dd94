/**
 * Races `work` against a deadline. The loser is not cancelled (DynamoDB calls cannot be taken back
 * once sent), but its result and any error it throws later are dropped, so nothing it does can
 * change the answer or surface as an unhandled rejection.
 */
export async function withTimeBudget<T>(work: Promise<T>, budgetMs: number, onTimeout: () => T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(onTimeout()), Math.max(0, budgetMs));
  });
  work.catch(() => undefined);
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * How long the hook may work: its configured budget, but never closer to the Lambda timeout than
 * the safety margin (AWS IoT waits at most 5 s and treats a timeout as a denial it cannot explain).
 */
export function timeBudgetMs(
  configured: number,
  safetyMarginMs: number,
  context: { getRemainingTimeInMillis?: () => number } | undefined,
): number {
  const remaining = context?.getRemainingTimeInMillis?.();
  if (typeof remaining !== 'number' || !Number.isFinite(remaining)) return configured;
  return Math.max(0, Math.min(configured, remaining - safetyMarginMs));
}
