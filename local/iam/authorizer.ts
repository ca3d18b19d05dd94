/**
 * The local stack's IAM: every AWS call a function makes is authorized against that function's role,
 * as serverless.yml declares it, with AWS's Service Authorization Reference deciding which resource
 * ARNs an action is authorized on. Calls signed with a function's credentials are checked; calls
 * signed with any other access key are the operator's (the CLI, tests, the AWS CLI pointed at the
 * local stack) and are not restricted, like an administrator's credentials.
 *
 * Every decision is recorded (bounded in memory, and appended to a JSON-lines file when
 * `FLEETGATE_IAM_AUDIT` names one), so a test run can prove that no call was denied.
 */
import { appendFileSync } from 'node:fs';
import type { RoleSpec } from '../stack-model';
import { type Decision, evaluate, type RequestContext } from './policy';
import type { ServiceAuthorizationData } from './service-data';

/** The access key id prefix of a function's local credentials: `local-fn-<function name>`. */
export const FUNCTION_KEY_PREFIX = 'local-fn-';

export function functionAccessKeyId(functionName: string): string {
  return `${FUNCTION_KEY_PREFIX}${functionName}`;
}

/** A principal whose calls are authorized: a function acting with its execution role. */
export interface FunctionPrincipal {
  functionName: string;
  /** The deployed function name (the role session name on AWS). */
  sessionName: string;
  role: RoleSpec;
  /** `arn:aws:sts::<account>:assumed-role/<role>/<function>`, as AWS names the caller. */
  arn: string;
}

/** One resource a call is authorized on, with its Service Authorization Reference resource type. */
export interface ResourceRef {
  type: string;
  arn: string;
}

/** What a call needs: an IAM action on resources, with the request's condition keys. */
export interface CallCheck {
  /** `service:Action`. */
  action: string;
  /** The resources the request names; ignored for actions without resource-level permissions. */
  resources: ResourceRef[];
  context?: RequestContext;
}

export interface CallRecord {
  at: string;
  stack: string;
  functionName: string;
  role: string;
  action: string;
  resource: string;
  decision: Decision;
  /** The statements that decided. */
  statements: string[];
  /** The function's role had been replaced at run time (a test removing a permission on purpose). */
  altered?: boolean;
  /** `dynamodb:LeadingKeys` of the request, when it had any. */
  leadingKeys?: string[];
}

/** AWS's denial: the action, the resource and why, in AWS's words. */
export class AccessDeniedError extends Error {
  override name = 'AccessDeniedError';
  constructor(
    readonly principalArn: string,
    readonly action: string,
    readonly resource: string,
    readonly explicit: boolean,
  ) {
    super(
      `User: ${principalArn} is not authorized to perform: ${action}${
        resource === '*' ? '' : ` on resource: ${resource}`
      } because ${
        explicit
          ? 'of an explicit deny in an identity-based policy'
          : `no identity-based policy allows the ${action} action`
      }`,
    );
  }
}

/** A call the local IAM cannot map onto the Service Authorization Reference: a local stack bug. */
export class UnmappedCallError extends Error {
  override name = 'UnmappedCallError';
}

export class Authorizer {
  private readonly principals = new Map<string, FunctionPrincipal>();
  private readonly altered = new Set<string>();
  private readonly written = new Set<string>();
  /** Every decision, oldest first (bounded). */
  readonly log: CallRecord[] = [];
  private readonly auditFile: string | undefined;

  constructor(
    readonly data: ServiceAuthorizationData,
    readonly options: { region: string; accountId: string; stack: string; auditFile?: string },
  ) {
    this.auditFile = options.auditFile ?? process.env.FLEETGATE_IAM_AUDIT ?? undefined;
  }

  /** Registers a function's identity; returns the access key id its calls are signed with. */
  registerFunction(functionName: string, sessionName: string, role: RoleSpec): string {
    return this.registerPrincipal(functionAccessKeyId(functionName), functionName, sessionName, role);
  }

  /**
   * Registers a service acting with a role of the template (e.g. a topic rule's action with
   * IotTopicRulesRole): `label` names it in the log; returns the access key id to sign with.
   */
  registerRole(label: string, role: RoleSpec): string {
    return this.registerPrincipal(
      `local-role-${role.logicalId}`,
      label,
      label.replace(/[^\w+=,.@-]/g, '-'),
      role,
    );
  }

  private registerPrincipal(
    accessKeyId: string,
    functionName: string,
    sessionName: string,
    role: RoleSpec,
  ): string {
    this.principals.set(accessKeyId, {
      functionName,
      sessionName,
      role,
      arn: `arn:aws:sts::${this.options.accountId}:assumed-role/${role.roleName}/${sessionName}`,
    });
    return accessKeyId;
  }

  /** The function an access key belongs to, or undefined for the operator. */
  principal(accessKeyId: string | undefined): FunctionPrincipal | undefined {
    return accessKeyId ? this.principals.get(accessKeyId) : undefined;
  }

  /** Marks a function's denials from now on as expected (a test probing what its role refuses). */
  expectDenials(functionName: string): void {
    this.altered.add(functionName);
  }

  /** Replaces a function's role (tests remove a permission to see the call fail); its denials are expected. */
  setRole(functionName: string, role: RoleSpec): void {
    const principal =
      this.principals.get(functionAccessKeyId(functionName)) ??
      [...this.principals.values()].find((candidate) => candidate.functionName === functionName);
    if (!principal) throw new Error(`no function ${functionName} is registered`);
    principal.role = role;
    this.altered.add(functionName);
    principal.arn = `arn:aws:sts::${this.options.accountId}:assumed-role/${role.roleName}/${principal.sessionName}`;
  }

  /**
   * Authorizes a call signed with `accessKeyId`.
   * @throws AccessDeniedError when the function's role does not allow every resource of the call.
   * @throws UnmappedCallError when the action or its resources do not fit the Service Authorization Reference.
   */
  authorize(accessKeyId: string | undefined, call: CallCheck): void {
    const principal = this.principal(accessKeyId);
    if (!principal) return;
    const resources = this.resourcesToCheck(call);
    const context: RequestContext = {
      'aws:PrincipalArn': principal.role.arn,
      'aws:PrincipalAccount': this.options.accountId,
      'aws:PrincipalType': 'AssumedRole',
      'aws:userid': `AROALOCAL:${principal.sessionName}`,
      'aws:SecureTransport': 'true',
      'aws:RequestedRegion': this.options.region,
      'aws:CurrentTime': new Date().toISOString(),
      'aws:EpochTime': String(Math.floor(Date.now() / 1000)),
      ...call.context,
    };
    for (const resource of resources) {
      const result = evaluate(principal.role.policies, { action: call.action, resource, context });
      this.record({
        at: new Date().toISOString(),
        stack: this.options.stack,
        functionName: principal.functionName,
        role: principal.role.logicalId,
        action: call.action,
        resource,
        decision: result.decision,
        statements: result.statements,
        ...(this.altered.has(principal.functionName) ? { altered: true } : {}),
        ...(Array.isArray(context['dynamodb:LeadingKeys']) && context['dynamodb:LeadingKeys'].length > 0
          ? { leadingKeys: context['dynamodb:LeadingKeys'] }
          : {}),
      });
      if (result.decision !== 'Allowed') {
        throw new AccessDeniedError(
          principal.arn,
          call.action,
          resource,
          result.decision === 'ExplicitlyDenied',
        );
      }
    }
  }

  /** The ARNs IAM checks: the request's resources typed per the reference, or `*`. */
  private resourcesToCheck(call: CallCheck): string[] {
    const data = this.data.action(call.action);
    if (!data) {
      throw new UnmappedCallError(
        `${call.action} is not an action of the Service Authorization Reference (iam-data ${this.data.version})`,
      );
    }
    if (data.resourceTypes.length === 0) return ['*'];
    const known = new Set(data.resourceTypes.map((type) => type.name));
    for (const resource of call.resources) {
      if (!known.has(resource.type)) {
        throw new UnmappedCallError(
          `${data.action} is not authorized on resource type ${resource.type} (reference: ${[...known].join(', ')})`,
        );
      }
    }
    // A required type is satisfied by any resource of a listed type: DynamoDB's Query lists `table`
    // as required and `index` as optional, and a Query on an index is authorized on the index alone.
    if (call.resources.length === 0) {
      const required = data.resourceTypes.filter((type) => type.required).map((type) => type.name);
      throw new UnmappedCallError(
        `${data.action} is authorized on ${required.join(' and ') || data.resourceTypes.map((type) => type.name).join(' or ')}; the call named none`,
      );
    }
    return call.resources.map((resource) => resource.arn);
  }

  /** Denials of functions whose role was not replaced at run time: what AWS would refuse too. */
  denials(): CallRecord[] {
    return this.log.filter((entry) => entry.decision !== 'Allowed' && !entry.altered);
  }

  private record(entry: CallRecord): void {
    this.log.push(entry);
    if (this.log.length > 20_000) this.log.splice(0, this.log.length - 20_000);
    // The file gets every denial and the first of each allowed (function, action, resource).
    const key = `${entry.functionName}|${entry.action}|${entry.resource}|${entry.decision}|${entry.leadingKeys?.join(',') ?? ''}`;
    if (entry.decision === 'Allowed') {
      if (this.written.has(key)) return;
      this.written.add(key);
    }
    if (this.auditFile) {
      try {
        appendFileSync(this.auditFile, `${JSON.stringify(entry)}\n`);
      } catch {
        // The audit file is a test aid; a failed append never fails the call.
      }
    }
  }
}

/** The access key id in a SigV4 `Authorization` header (`Credential=<key>/<scope>`), if any. */
export function accessKeyOf(authorization: string | undefined): string | undefined {
  return authorization ? /Credential=([^/,\s]+)\//.exec(authorization)?.[1] : undefined;
}
