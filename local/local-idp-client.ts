/**
 * The client side of the local stack's token issuer (`POST /.local-idp/token` on the local HTTP API,
 * `local/http-api.ts`): a token for an installer, as the app gets one at sign-in. Local only.
 */
export async function localInstallerToken(
  apiUrl: string,
  subject: string,
  ttlSeconds?: number,
): Promise<string> {
  const response = await fetch(`${apiUrl}/.local-idp/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ subject, ...(ttlSeconds ? { ttlSeconds } : {}) }),
  });
  const body = (await response.json().catch(() => ({}))) as { token?: string; message?: string };
  if (!response.ok || !body.token) {
    throw new Error(`the local token issuer refused: ${body.message ?? response.status}`);
  }
  return body.token;
}
