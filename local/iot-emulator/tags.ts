/**
 * Resource tags (RegisterCACertificate's `tags`, TagResource, UntagResource, ListTagsForResource),
 * emulated on CA certificates only: the one resource whose tags fleetgate reads (JITR trusts a CA
 * tagged `fleetgate:trusted=true`). A tag call on any other resource type fails with
 * `NotEmulatedException` naming the type, never with an empty answer AWS would not give.
 *
 * Rules from the AWS IoT API reference, `Tag` and `TagResource`: a key is 1–128 characters, a value
 * 0–256, at most 50 tags per resource, and the `aws:` prefix is reserved.
 * @see https://docs.aws.amazon.com/iot/latest/apireference/API_Tag.html
 * @see https://docs.aws.amazon.com/iot/latest/apireference/API_TagResource.html
 */
import { IotError, invalidRequest } from './errors';

const MAX_TAGS = 50;
const KEY_PATTERN = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$/u;

/** The tags of a request (`[{ Key, Value }]`), checked; undefined when the request has none. */
export function parseTags(value: unknown, member = 'tags'): Map<string, string> | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value)) throw invalidRequest(`${member} must be a list of {Key, Value}`);
  const tags = new Map<string, string>();
  value.forEach((tag: unknown, index) => {
    const { Key: key, Value: tagValue = '' } = (tag ?? {}) as { Key?: unknown; Value?: unknown };
    const where = `${member}[${index}]`;
    checkKey(key, `${where}.Key`);
    if (typeof tagValue !== 'string' || tagValue.length > 256) {
      throw invalidRequest(`${where}.Value must be a string of at most 256 characters`);
    }
    tags.set(key, tagValue);
  });
  return tags;
}

/** The keys of an UntagResource request, checked. */
export function parseTagKeys(value: unknown): string[] {
  if (!Array.isArray(value)) throw invalidRequest('tagKeys must be a list of tag keys');
  value.forEach((key: unknown, index) => {
    checkKey(key, `tagKeys[${index}]`);
  });
  return value as string[];
}

function checkKey(key: unknown, where: string): asserts key is string {
  if (typeof key !== 'string' || key.length < 1 || key.length > 128 || !KEY_PATTERN.test(key)) {
    throw invalidRequest(`${where} must be 1-128 letters, digits, spaces or _.:/=+-@`);
  }
  if (key.toLowerCase().startsWith('aws:')) {
    throw invalidRequest(`${where}: the aws: prefix is reserved for AWS`);
  }
}

/** `into` with `added` merged in; fails when the resource would carry more than 50 tags. */
export function mergeTags(into: Map<string, string>, added: Map<string, string>): void {
  const keys = new Set([...into.keys(), ...added.keys()]);
  if (keys.size > MAX_TAGS) {
    throw new IotError('LimitExceededException', `a resource carries at most ${MAX_TAGS} tags`);
  }
  for (const [key, value] of added) into.set(key, value);
}

/** The CA certificate id of a `cacert/<id>` ARN; a tag call on another resource type is not emulated. */
export function caIdOfTaggedArn(resourceArn: unknown): string {
  if (typeof resourceArn !== 'string' || resourceArn === '') {
    throw invalidRequest('resourceArn is required');
  }
  const match = /^arn:[^:]+:iot:[^:]*:\d{12}:([a-z]+)\/(.+)$/.exec(resourceArn);
  if (!match) throw invalidRequest(`resourceArn ${resourceArn} is not an AWS IoT resource ARN`);
  if (match[1] !== 'cacert') {
    throw new IotError(
      'NotEmulatedException',
      `tags are emulated on CA certificates (cacert/<id>) only, not on ${match[1]} resources`,
    );
  }
  return match[2] as string;
}
