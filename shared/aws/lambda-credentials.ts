/**
 * The SDK's default credential chain as a Lambda bundle needs it: only the environment. The Lambda
 * runtime puts the execution role's credentials in `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
 * `AWS_SESSION_TOKEN` before the handler's module loads, so the rest of the chain (SSO, INI files,
 * process, web identity, container and instance metadata — ~100 KiB minified with the nested STS /
 * SSO / sign-in clients) is never reached there. serverless.yml's `custom.esbuild.alias` puts this
 * module in place of `@aws-sdk/credential-provider-node` in the bundles only; tests, the CLI and
 * the local stack run the real chain.
 * @see https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime
 */

interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  expiration?: Date;
  accountId?: string;
}

/** Same name and signature as `@aws-sdk/credential-provider-node`'s; the init is not needed. */
export const defaultProvider =
  (_init: unknown = {}) =>
  async (): Promise<Credentials> => {
    const accessKeyId = process.env.AWS_ACCESS_KEY_ID;
    const secretAccessKey = process.env.AWS_SECRET_ACCESS_KEY;
    if (!accessKeyId || !secretAccessKey) {
      const error = new Error(
        'no AWS credentials in the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)',
      );
      error.name = 'CredentialsProviderError';
      throw error;
    }
    const {
      AWS_SESSION_TOKEN: sessionToken,
      AWS_CREDENTIAL_EXPIRATION: expiration,
      AWS_ACCOUNT_ID: accountId,
    } = process.env;
    return {
      accessKeyId,
      secretAccessKey,
      ...(sessionToken ? { sessionToken } : {}),
      ...(expiration ? { expiration: new Date(expiration) } : {}),
      ...(accountId ? { accountId } : {}),
    };
  };

export const credentialsWillNeedRefresh = (credentials?: Credentials): boolean =>
  credentials?.expiration !== undefined;

export const credentialsTreatedAsExpired = (credentials?: Credentials): boolean =>
  credentials?.expiration !== undefined && credentials.expiration.getTime() - Date.now() < 300_000;
