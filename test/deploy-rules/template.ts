/**
 * Small helpers to read a synthesized CloudFormation template (the JSON that `cdk synth` writes) in
 * the deploy-rule suite. Values may be CloudFormation tokens (Ref, Fn::GetAtt, Fn::Join, dynamic
 * references): the helpers return `undefined` for what cannot be known at synth, and the rules skip it.
 */

/** Any JSON value. */
export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
/** A JSON object. */
export type JsonObject = { [key: string]: Json };

/** One resource of a template. */
export interface CfnResource {
  readonly Type: string;
  Properties?: JsonObject;
  DependsOn?: string | string[];
  CreationPolicy?: JsonObject;
  UpdatePolicy?: JsonObject;
  DeletionPolicy?: string;
  UpdateReplacePolicy?: string;
  Metadata?: JsonObject;
  Condition?: string;
}

/** A synthesized CloudFormation template. */
export interface CfnTemplate {
  Resources: Record<string, CfnResource>;
  Outputs?: JsonObject;
  Parameters?: JsonObject;
  Mappings?: JsonObject;
  Conditions?: JsonObject;
  [section: string]: Json | Record<string, CfnResource> | undefined;
}

/** What a rule knows about the stack besides its template. */
export interface RuleContext {
  /** The stack's name, as the CLI deploys it. */
  readonly stackName: string;
  /** The stack's region, when it is pinned (stacks are environment-agnostic today, so usually undefined). */
  readonly region?: string;
  /**
   * Logical ids of this template's resources that a CloudFront VPC origin of another stack reaches
   * (the load balancer of a stage-10m secondary region).
   */
  readonly vpcOriginTargets?: string[];
}

/** Whether a value is a JSON object (not an array). */
export function isObject(value: Json | undefined): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The resources of one type, as [logicalId, resource] pairs. */
export function resourcesOfType(template: CfnTemplate, type: string): [string, CfnResource][] {
  return Object.entries(template.Resources).filter(([, r]) => r.Type === type);
}

/** The properties of a resource (an empty object when it has none). */
export function props(resource: CfnResource): JsonObject {
  return resource.Properties ?? {};
}

/** A literal string, or undefined for a token. */
export function str(value: Json | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** A literal number (CloudFormation accepts numbers as strings too), or undefined for a token. */
export function num(value: Json | undefined): number | undefined {
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && value.trim() !== '' && !Number.isNaN(Number(value))) return Number(value);
  return undefined;
}

/** A literal boolean (also "true"/"false"), or undefined for a token or absent value. */
export function bool(value: Json | undefined): boolean | undefined {
  if (typeof value === 'boolean') return value;
  if (value === 'true' || value === 'false') return value === 'true';
  return undefined;
}

/**
 * The logical id that a `{ Ref }` or `{ Fn::GetAtt }` points at, if that resource is in the template.
 * Pseudo parameters (AWS::Region) and parameters are not resources, so they give undefined.
 */
export function refTarget(template: CfnTemplate, value: Json | undefined): string | undefined {
  if (!isObject(value)) return undefined;
  let id: string | undefined;
  if (typeof value.Ref === 'string') id = value.Ref;
  const getAtt = value['Fn::GetAtt'];
  if (Array.isArray(getAtt) && typeof getAtt[0] === 'string') id = getAtt[0];
  if (typeof getAtt === 'string') id = getAtt.split('.')[0];
  return id !== undefined && id in template.Resources ? id : undefined;
}

/** Every resource logical id a value refers to, however deep (Ref, Fn::GetAtt, ${Id} in Fn::Sub). */
export function referencedIds(template: CfnTemplate, value: Json | undefined): string[] {
  const found = new Set<string>();
  const visit = (v: Json | undefined): void => {
    if (Array.isArray(v)) v.forEach(visit);
    else if (isObject(v)) {
      const target = refTarget(template, v);
      if (target) found.add(target);
      const sub = v['Fn::Sub'];
      const subText = typeof sub === 'string' ? sub : Array.isArray(sub) ? str(sub[0]) : undefined;
      for (const m of subText?.matchAll(/\$\{([A-Za-z0-9]+)(\.[^}]*)?\}/g) ?? []) {
        if (m[1] in template.Resources) found.add(m[1]);
      }
      Object.values(v).forEach(visit);
    }
  };
  visit(value);
  return [...found];
}

/**
 * Renders a value as text: literal strings as they are, Fn::Join joined, Fn::Base64 as its plain
 * content, and every other token through `token` (by default `${Ref:Id}` / `${GetAtt:Id.Attr}`
 * markers, so a rule can still see which resource a part of the text came from).
 */
export function renderText(value: Json | undefined, token: (value: Json) => string = tokenMarker): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (isObject(value)) {
    const join = value['Fn::Join'];
    if (Array.isArray(join) && typeof join[0] === 'string' && Array.isArray(join[1])) {
      return join[1].map((part) => renderText(part, token)).join(join[0]);
    }
    if ('Fn::Base64' in value) return renderText(value['Fn::Base64'], token);
  }
  return value === undefined || value === null ? '' : token(value);
}

function tokenMarker(value: Json): string {
  if (isObject(value)) {
    if (typeof value.Ref === 'string') return `\${Ref:${value.Ref}}`;
    const getAtt = value['Fn::GetAtt'];
    if (Array.isArray(getAtt)) return `\${GetAtt:${getAtt.join('.')}}`;
  }
  return '${Token}';
}

/**
 * The allowance, in bytes, for a value behind a token in size estimates. The ids, ARNs and endpoints
 * that CDK-named resources resolve to are shorter (a secret's ARN is about 100 bytes, an RDS endpoint
 * about 70, a volume id 21); a hand-picked long physical name could exceed it.
 */
// The same estimate the library checks user data with at synth.
export { estimatedBytes, TOKEN_ALLOWANCE_BYTES } from '../../lib/private/user-data-size';

/** A Secrets Manager dynamic reference (`{{resolve:secretsmanager:...}}`) to a secret in the template. */
export interface SecretReference {
  /** The logical id of the AWS::SecretsManager::Secret. */
  readonly secretId: string;
  /** The JSON key the reference selects, or undefined for the whole secret string. */
  readonly jsonKey?: string;
}

/**
 * The secret a property value resolves through a dynamic reference, when the reference names a secret
 * of this template by Ref (which is how CDK renders `SecretValue.secretsManager(secret.secretArn)` and
 * `secret.secretValue`). A reference to a secret outside the template gives undefined.
 */
export function secretReference(template: CfnTemplate, value: Json | undefined): SecretReference | undefined {
  const text = renderText(value);
  const match =
    /\{\{resolve:secretsmanager:\$\{(?:Ref|GetAtt):([A-Za-z0-9]+)[^}]*\}(?::SecretString:([^:}]*))?/.exec(
      text,
    );
  if (!match || !(match[1] in template.Resources)) return undefined;
  if (template.Resources[match[1]].Type !== 'AWS::SecretsManager::Secret') return undefined;
  return { secretId: match[1], jsonKey: match[2] ? match[2] : undefined };
}

/**
 * A comparable key for an Availability Zone value: the literal zone name, or `index N of the region's
 * zones` for `Fn::Select [N, Fn::GetAZs '']` (what env-agnostic CDK stacks render). Two keys of the
 * same kind that differ name different zones; anything else (a parameter, an import) is undefined.
 */
export function azKey(value: Json | undefined): string | undefined {
  if (typeof value === 'string') return `name:${value}`;
  if (!isObject(value)) return undefined;
  const select = value['Fn::Select'];
  if (!Array.isArray(select) || !isObject(select[1]) || !('Fn::GetAZs' in select[1])) return undefined;
  const getAzs = select[1]['Fn::GetAZs'];
  const regionOfStack = getAzs === '' || (isObject(getAzs) && getAzs.Ref === 'AWS::Region');
  const index = num(select[0]);
  return regionOfStack && index !== undefined ? `index:${index}` : undefined;
}

/**
 * A comparable key for an Availability Zone ID value: the literal zone ID, or the mapping and second
 * key of `Fn::FindInMap [<mapping>, AWS::Region, <key>]` (a zone ID looked up for the stack's region).
 * Keys of zone IDs never equal keys of zone names: an account maps names to IDs its own way.
 */
export function azIdKey(value: Json | undefined): string | undefined {
  if (typeof value === 'string') return `id:${value}`;
  if (!isObject(value) || !Array.isArray(value['Fn::FindInMap'])) return undefined;
  const [mapping, region, key] = value['Fn::FindInMap'];
  return isObject(region) &&
    region.Ref === 'AWS::Region' &&
    typeof mapping === 'string' &&
    typeof key === 'string'
    ? `id-in-map:${mapping}.${key}`
    : undefined;
}

/** The Availability Zone key of a subnet of the template (undefined when it cannot be known). */
export function subnetAz(template: CfnTemplate, subnetRef: Json | undefined): string | undefined {
  const id = refTarget(template, subnetRef);
  if (!id || template.Resources[id].Type !== 'AWS::EC2::Subnet') return undefined;
  const p = props(template.Resources[id]);
  return azKey(p.AvailabilityZone) ?? azIdKey(p.AvailabilityZoneId);
}

/**
 * Whether the resource `from` waits for `to` before CloudFormation creates it: an explicit DependsOn,
 * or a Ref/Fn::GetAtt in its properties, followed transitively.
 */
export function dependsOn(template: CfnTemplate, from: string, to: string): boolean {
  const seen = new Set<string>();
  const stack = [from];
  while (stack.length > 0) {
    const id = stack.pop()!;
    if (seen.has(id)) continue;
    seen.add(id);
    const resource = template.Resources[id];
    if (!resource) continue;
    const explicit = resource.DependsOn === undefined ? [] : [resource.DependsOn].flat();
    for (const next of [...explicit, ...referencedIds(template, resource.Properties ?? null)]) {
      if (next === to) return true;
      stack.push(next);
    }
  }
  return false;
}

/** A value as a list (CloudFormation accepts a single item where a list is expected in some places). */
export function list(value: Json | undefined): Json[] {
  if (value === undefined || value === null) return [];
  return Array.isArray(value) ? value : [value];
}

/** Every literal string inside a value, however deep (e.g. the principals behind an Fn::If). */
export function stringsIn(value: Json | undefined): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.flatMap(stringsIn);
  if (isObject(value)) return Object.values(value).flatMap(stringsIn);
  return [];
}
