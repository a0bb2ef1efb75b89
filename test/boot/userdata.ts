import * as crypto from 'crypto';
import { Template } from 'aws-cdk-lib/assertions';

/** The fake account, region and stack name a rendered template is deployed to. */
export const FAKE_ACCOUNT = '123456789012';
export const FAKE_REGION = 'us-east-1';

interface Resource {
  readonly Type: string;
  readonly Properties?: Record<string, unknown>;
  readonly Metadata?: Record<string, unknown>;
}

/** The user data a server receives, as EC2 hands it to cloud-init, and its parts. */
export interface RenderedUserData {
  /** The logical id of the resource that carries the user data (instance or launch template). */
  readonly carrierId: string;
  /** The decoded user data: a MIME multipart document or a plain script. */
  readonly raw: string;
  /** The `text/cloud-config` part, if any. */
  readonly cloudConfig?: string;
  /** The shell script cloud-init runs (`text/x-shellscript`, or the whole user data if it starts with `#!`). */
  readonly script: string;
}

function hex(seed: string, length: number): string {
  return crypto.createHash('sha256').update(seed).digest('hex').slice(0, length);
}

/**
 * Resolves CloudFormation intrinsic functions in a synthesized template to realistic fake values,
 * as CloudFormation would at deploy time: volume ids look like `vol-0...`, secret ARNs like ARNs,
 * database endpoints like RDS endpoints. An intrinsic it does not know fails loudly, so a new kind
 * of token in the user data cannot slip through as a placeholder.
 */
export class FakeDeployment {
  private readonly resources: Record<string, Resource>;

  /**
   * The S3 objects the servers may download, by `s3://` URL: the stack's file assets (their zip), in
   * the bootstrap bucket of the fake account and region.
   */
  public readonly objects = new Map<string, Buffer>();

  constructor(
    template: Template,
    public readonly stackName: string = 'ScaleStages',
    assets: ReadonlyMap<string, Buffer> = new Map(),
  ) {
    this.resources = (template.toJSON() as { Resources?: Record<string, Resource> }).Resources ?? {};
    for (const [hash, zip] of assets) {
      this.objects.set(`s3://cdk-hnb659fds-assets-${FAKE_ACCOUNT}-${FAKE_REGION}/${hash}.zip`, zip);
    }
  }

  /** The physical id CloudFormation would return for `Ref` of a resource or pseudo parameter. */
  public ref(id: string): string {
    const pseudo: Record<string, string> = {
      'AWS::Region': FAKE_REGION,
      'AWS::AccountId': FAKE_ACCOUNT,
      'AWS::Partition': 'aws',
      'AWS::URLSuffix': 'amazonaws.com',
      'AWS::StackName': this.stackName,
      'AWS::StackId': `arn:aws:cloudformation:${FAKE_REGION}:${FAKE_ACCOUNT}:stack/${this.stackName}/${hex(this.stackName, 8)}`,
    };
    if (id in pseudo) return pseudo[id];
    const resource = this.resources[id];
    if (!resource)
      throw new Error(`Ref to '${id}', which is neither a resource nor a known pseudo parameter`);
    switch (resource.Type) {
      case 'AWS::EC2::Volume':
        return `vol-0${hex(id, 16)}`;
      case 'AWS::EC2::Instance':
        return `i-0${hex(id, 16)}`;
      case 'AWS::SecretsManager::Secret':
        return `arn:aws:secretsmanager:${FAKE_REGION}:${FAKE_ACCOUNT}:secret:${id}-${hex(id, 6)}`;
      case 'AWS::SecretsManager::SecretTargetAttachment':
        // Ref of an attachment returns the ARN of the secret it attaches.
        return this.resolve(resource.Properties?.SecretId);
      case 'AWS::S3::Bucket':
        return `${this.stackName}-${id}-${hex(id, 12)}`.toLowerCase();
      case 'AWS::CloudFormation::WaitConditionHandle':
        // Ref of a handle is the presigned S3 URL that cfn-signal sends the wait condition's signals to.
        return `https://cloudformation-waitcondition-${FAKE_REGION}.s3.amazonaws.com/${id}-${hex(id, 8)}`;
      default:
        return `${id.toLowerCase()}-${hex(id, 8)}`;
    }
  }

  /** The value CloudFormation would return for `Fn::GetAtt`. */
  public getAtt(id: string, attribute: string): string {
    const resource = this.resources[id];
    if (!resource) throw new Error(`Fn::GetAtt of '${id}', which is not a resource`);
    const lower = id.toLowerCase();
    if (resource.Type === 'AWS::RDS::DBInstance' || resource.Type === 'AWS::RDS::DBCluster') {
      if (attribute.endsWith('.Port')) return '5432';
      return `${lower}.c${hex(id, 11)}.${FAKE_REGION}.rds.amazonaws.com`;
    }
    if (resource.Type === 'AWS::ElastiCache::ReplicationGroup') {
      if (attribute.endsWith('.Port')) return '6379';
      const role = attribute.startsWith('Reader') ? 'replica' : 'master';
      return `${role}.${lower}.${hex(id, 6)}.use1.cache.amazonaws.com`;
    }
    if (attribute === 'Arn' || attribute.endsWith('Arn')) {
      return `arn:aws:${resource.Type.split('::')[1].toLowerCase()}:${FAKE_REGION}:${FAKE_ACCOUNT}:${lower}`;
    }
    return `${lower}-${attribute.toLowerCase().replace(/\./g, '-')}`;
  }

  /** Resolves a property value with intrinsic functions to a string. */
  public resolve(value: unknown): string {
    if (typeof value === 'string') return value;
    if (typeof value === 'number') return String(value);
    if (!value || typeof value !== 'object' || Array.isArray(value)) {
      throw new Error(`cannot render ${JSON.stringify(value)} as a string`);
    }
    const entries = Object.entries(value as Record<string, unknown>);
    if (entries.length !== 1) throw new Error(`not an intrinsic function: ${JSON.stringify(value)}`);
    const [fn, arg] = entries[0];
    switch (fn) {
      case 'Ref':
        return this.ref(arg as string);
      case 'Fn::GetAtt': {
        const [id, attribute] = Array.isArray(arg) ? (arg as string[]) : (arg as string).split(/\.(.*)/);
        return this.getAtt(id, attribute);
      }
      case 'Fn::Join': {
        const [separator, parts] = arg as [string, unknown[]];
        return parts.map((part) => this.resolve(part)).join(separator);
      }
      case 'Fn::Base64':
        return Buffer.from(this.resolve(arg), 'utf8').toString('base64');
      case 'Fn::Select': {
        const [index, list] = arg as [number | string, unknown];
        const items = Array.isArray(list) ? list.map((item) => this.resolve(item)) : this.resolveList(list);
        return items[Number(index)];
      }
      case 'Fn::Split':
        throw new Error('Fn::Split yields a list; only Fn::Select of it renders as a string');
      case 'Fn::Sub': {
        const [text, variables] = (Array.isArray(arg) ? arg : [arg, {}]) as [string, Record<string, unknown>];
        return text.replace(/\$\{([^}!]+)\}/g, (_match, name: string) => {
          if (name in variables) return this.resolve(variables[name]);
          const [id, attribute] = name.split(/\.(.*)/);
          return attribute ? this.getAtt(id, attribute) : this.ref(id);
        });
      }
      default:
        throw new Error(`the boot harness cannot render ${fn} yet: ${JSON.stringify(value)}`);
    }
  }

  private resolveList(value: unknown): string[] {
    const obj = value as Record<string, unknown>;
    if (obj && 'Fn::Split' in obj) {
      const [separator, source] = obj['Fn::Split'] as [string, unknown];
      return this.resolve(source).split(separator);
    }
    if (obj && 'Fn::GetAZs' in obj) return ['a', 'b', 'c'].map((zone) => `${FAKE_REGION}${zone}`);
    throw new Error(`cannot render ${JSON.stringify(value)} as a list`);
  }

  /** Logical ids of the resources of a type. */
  public idsOfType(type: string): string[] {
    return Object.entries(this.resources)
      .filter(([, resource]) => resource.Type === type)
      .map(([id]) => id);
  }

  /** A resource's properties. */
  public properties(id: string): Record<string, unknown> {
    return this.resources[id]?.Properties ?? {};
  }

  /**
   * The secrets the servers may read, by ARN, with values shaped as Secrets Manager generates them:
   * a JSON object from `SecretStringTemplate` plus the generated key, or a plain generated string.
   */
  public secrets(): Map<string, string> {
    const secrets = new Map<string, string>();
    for (const id of this.idsOfType('AWS::SecretsManager::Secret')) {
      const generate = this.properties(id).GenerateSecretString as
        { SecretStringTemplate?: string; GenerateStringKey?: string } | undefined;
      const generated = `Pw${hex(`password-${id}`, 30)}`;
      let value = generated;
      if (generate?.SecretStringTemplate && generate.GenerateStringKey) {
        value = JSON.stringify({
          ...JSON.parse(generate.SecretStringTemplate),
          [generate.GenerateStringKey]: generated,
        });
      }
      secrets.set(this.ref(id), value);
    }
    return secrets;
  }

  /** The resources whose metadata has `key`. */
  public idsWithMetadata(key: string): string[] {
    return Object.entries(this.resources)
      .filter(([, resource]) => resource.Metadata?.[key] !== undefined)
      .map(([id]) => id);
  }

  /** A top-level key of a resource's metadata, its fields resolved as cfn-get-metadata prints them. */
  public metadata(id: string, key: string): Record<string, string> {
    const value = this.resources[id]?.Metadata?.[key] as Record<string, unknown> | undefined;
    if (!value) throw new Error(`${id} has no metadata key ${key}`);
    return Object.fromEntries(Object.entries(value).map(([field, v]) => [field, this.resolve(v)]));
  }

  /** The user data of an EC2 instance, decoded. */
  public instanceUserData(instanceId: string): RenderedUserData {
    return this.decode(instanceId, this.properties(instanceId).UserData);
  }

  /** The user data of a launch template, decoded. */
  public launchTemplateUserData(launchTemplateId: string): RenderedUserData {
    const data = this.properties(launchTemplateId).LaunchTemplateData as Record<string, unknown>;
    return this.decode(launchTemplateId, data.UserData);
  }

  private decode(carrierId: string, userData: unknown): RenderedUserData {
    if (userData === undefined) throw new Error(`${carrierId} has no UserData`);
    // EC2 takes the user data base64-encoded (Fn::Base64) and hands cloud-init the decoded bytes.
    const raw = Buffer.from(this.resolve(userData), 'base64').toString('utf8');
    if (raw.startsWith('#!')) return { carrierId, raw, script: raw };
    return { carrierId, raw, ...parseMultipart(raw) };
  }
}

/** Splits a MIME multipart user data into its cloud-config and shell script parts, as cloud-init does. */
export function parseMultipart(raw: string): { cloudConfig?: string; script: string } {
  const boundary = /boundary="([^"]+)"/.exec(raw)?.[1];
  if (!boundary) throw new Error(`user data is neither a script nor MIME multipart:\n${raw.slice(0, 200)}`);
  let cloudConfig: string | undefined;
  let script: string | undefined;
  for (const part of raw.split(`--${boundary}`).slice(1)) {
    if (part.startsWith('--')) break;
    const separator = part.indexOf('\n\n');
    const headers = part.slice(0, separator);
    let body = part.slice(separator + 2).replace(/\n$/, '');
    if (/Content-Transfer-Encoding: base64/i.test(headers))
      body = Buffer.from(body, 'base64').toString('utf8');
    if (/Content-Type: text\/cloud-config/i.test(headers)) cloudConfig = body;
    else if (/Content-Type: text\/x-shellscript/i.test(headers)) {
      if (script !== undefined) throw new Error('more than one shell script part; the harness runs one');
      script = body;
    }
  }
  if (script === undefined) throw new Error('no text/x-shellscript part in the user data');
  return { cloudConfig, script };
}
