/**
 * Which CAs JITR trusts besides `TRUSTED_CA_IDS`, as `fleetgate doctor` reads them: CAs the store
 * records (`fleetgate certificates register <ca.pem> --kind ca`) and CAs tagged
 * `fleetgate:trusted=true` in AWS IoT — the same two sources as the registerCertificate function
 * (functions/register-certificate/ca-trust.ts).
 */
import { BatchGetItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { type IoTClient, ListTagsForResourceCommand } from '@aws-sdk/client-iot';
import { CA_TRUST_TAG } from '../domain/registration-rules';

/** A CA as the doctor's jitr check listed and described it. */
export interface RegisteredCa {
  certificateId: string;
  certificateArn?: string;
}

/** The ids of the CAs among `cas` that the store records as a CA or that carry the trust tag. */
export async function trustedCaIdsOf(
  clients: { dynamodb: DynamoDBClient; iot: IoTClient },
  tableName: string,
  cas: readonly RegisteredCa[],
): Promise<Set<string>> {
  const trusted = await recordedCaIds(
    clients.dynamodb,
    tableName,
    cas.map((ca) => ca.certificateId),
  );
  for (const { certificateId, certificateArn } of cas) {
    if (trusted.has(certificateId) || !certificateArn) continue;
    if (await hasTrustTag(clients.iot, certificateArn)) trusted.add(certificateId);
  }
  return trusted;
}

/** Whether the CA carries `fleetgate:trusted=true` (ListTagsForResource, every page). */
async function hasTrustTag(iot: IoTClient, resourceArn: string): Promise<boolean> {
  let nextToken: string | undefined;
  do {
    const page = await iot.send(
      new ListTagsForResourceCommand({ resourceArn, ...(nextToken ? { nextToken } : {}) }),
    );
    if (page.tags?.some((tag) => tag.Key === CA_TRUST_TAG.key && tag.Value === CA_TRUST_TAG.value))
      return true;
    nextToken = page.nextToken;
  } while (nextToken);
  return false;
}

/**
 * The CA certificate ids among `ids` that the store records as ACTIVE CAs (`fleetgate certificates
 * register <ca.pem> --kind ca`): `CERT#<id>` items of kind CA, read with BatchGetItem.
 */
export async function recordedCaIds(
  dynamodb: DynamoDBClient,
  tableName: string,
  ids: readonly string[],
): Promise<Set<string>> {
  const found = new Set<string>();
  for (let i = 0; i < ids.length; i += 100) {
    let request: Record<
      string,
      { Keys: Array<Record<string, { S: string }>>; ProjectionExpression?: string }
    > = {
      [tableName]: {
        Keys: ids.slice(i, i + 100).map((id) => ({ PK: { S: `CERT#${id}` }, SK: { S: 'CERT' } })),
      },
    };
    for (let attempt = 0; Object.keys(request).length > 0 && attempt < 5; attempt += 1) {
      const out = await dynamodb.send(new BatchGetItemCommand({ RequestItems: request }));
      for (const item of out.Responses?.[tableName] ?? []) {
        if (item.kind?.S === 'CA' && item.status?.S === 'ACTIVE' && item.certificateId?.S)
          found.add(item.certificateId.S);
      }
      request = (out.UnprocessedKeys ?? {}) as typeof request;
    }
  }
  return found;
}
