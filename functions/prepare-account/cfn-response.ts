/**
 * The CloudFormation custom-resource response protocol, without a dependency: one PUT of a JSON
 * document to the pre-signed `ResponseURL`, with an empty Content-Type (the URL's signature does
 * not cover one).
 * @see https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-responses.html
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface CustomResourceEvent {
  RequestType: 'Create' | 'Update' | 'Delete';
  ResponseURL: string;
  StackId: string;
  RequestId: string;
  ResourceType: string;
  LogicalResourceId: string;
  PhysicalResourceId?: string;
  ResourceProperties: Record<string, unknown>;
  OldResourceProperties?: Record<string, unknown>;
}

export interface CustomResourceResponse {
  Status: 'SUCCESS' | 'FAILED';
  /** Shown in the CloudFormation console; at most 4 KB of the whole response body is sent. */
  Reason?: string;
  PhysicalResourceId: string;
  Data?: Record<string, string>;
}

/** PUTs the response; retries twice on network errors and 5xx. */
export async function sendCfnResponse(
  event: CustomResourceEvent,
  response: CustomResourceResponse,
): Promise<void> {
  const body = JSON.stringify({
    Status: response.Status,
    Reason: (response.Reason ?? response.Status).slice(0, 1000),
    PhysicalResourceId: response.PhysicalResourceId,
    StackId: event.StackId,
    RequestId: event.RequestId,
    LogicalResourceId: event.LogicalResourceId,
    NoEcho: false,
    ...(response.Data ? { Data: response.Data } : {}),
  });
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt += 1) {
    try {
      const status = await put(event.ResponseURL, body);
      if (status < 500) {
        if (status >= 300) throw new Error(`ResponseURL answered HTTP ${status}`);
        return;
      }
      lastError = new Error(`ResponseURL answered HTTP ${status}`);
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 200 * 2 ** attempt));
  }
  throw lastError;
}

function put(url: string, body: string): Promise<number> {
  const target = new URL(url);
  const send = target.protocol === 'http:' ? httpRequest : httpsRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      target,
      {
        method: 'PUT',
        headers: { 'content-type': '', 'content-length': Buffer.byteLength(body) },
        timeout: 10_000,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('timeout', () => req.destroy(new Error('ResponseURL timed out')));
    req.on('error', reject);
    req.end(body);
  });
}
