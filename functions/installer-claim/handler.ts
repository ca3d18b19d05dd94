/**
 * Lambda entry point of the installer API (`installerClaim` in serverless.yml): `POST /claims` on
 * the HTTP API, behind its JWT authorizer. Composition happens once per container, here; the
 * behaviour is in `create-handler.ts`.
 * @see https://docs.aws.amazon.com/iot/latest/apireference/API_CreateProvisioningClaim.html
 */
import { CreateProvisioningClaimCommand } from '@aws-sdk/client-iot';
import { documentClient } from '../../shared/aws/clients';
import { loadConfig } from '../../shared/config';
import { ConfigError } from '../../shared/errors';
import { iotClient } from '../../shared/iot/iot-registry';
import { createLogger, createMetrics } from '../../shared/logging';
import { StoreClient } from '../../shared/store/client';
import { InstallerStore } from '../../shared/store/installer-store';
import { createHandler, type InstallerClaimDeps } from './create-handler';

export { createHandler, type InstallerClaimDeps } from './create-handler';

/** Composition from the environment, once per container. Throws ConfigError on a bad environment. */
function defaultDeps(): InstallerClaimDeps {
  const config = loadConfig(process.env);
  if (!config.installerTemplateName) throw new ConfigError(['INSTALLER_TEMPLATE_NAME: is required']);
  const iot = iotClient();
  return {
    config,
    store: new InstallerStore(new StoreClient(documentClient(), config.tableName)),
    createClaim: async (templateName) => {
      const out = await iot.send(new CreateProvisioningClaimCommand({ templateName }));
      if (!out.certificateId || !out.certificatePem || !out.keyPair?.PrivateKey || !out.expiration) {
        throw new Error('CreateProvisioningClaim returned an incomplete claim');
      }
      return {
        certificateId: out.certificateId,
        certificatePem: out.certificatePem,
        privateKey: out.keyPair.PrivateKey,
        expiration: out.expiration,
      };
    },
    logger: createLogger('installerClaim'),
    metrics: createMetrics('installerClaim'),
  };
}

export const handler = createHandler(defaultDeps());
