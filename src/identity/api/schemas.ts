// TypeBox schemas of identity request bodies. Unknown attributes are kept as Keystone "extra".
import { Type } from '@sinclair/typebox';

const Name = Type.String({ minLength: 1, maxLength: 255, pattern: '\\S' });
/** Keystone allows 64 characters for project and domain names (255 for users, groups, roles). */
const ShortName = Type.String({ minLength: 1, maxLength: 64, pattern: '\\S' });
const Desc = Type.Union([Type.String({ maxLength: 65535 }), Type.Null()]);
const Id = Type.String({ minLength: 1, maxLength: 64 });
const Tag = Type.String({ minLength: 1, maxLength: 255, pattern: '^[^,/]+$' });
const Tags = Type.Array(Tag, { maxItems: 80 });
const NullableId = Type.Union([Id, Type.Null()]);

export const DomainCreate = Type.Object({ domain: Type.Object({
  name: ShortName, description: Type.Optional(Desc), enabled: Type.Optional(Type.Boolean()), tags: Type.Optional(Tags),
  explicit_domain_id: Type.Optional(Type.String({ pattern: '^[0-9a-f]{32}$' })), options: Type.Optional(Type.Object({})),
}) });
export const DomainUpdate = Type.Object({ domain: Type.Object({
  name: Type.Optional(ShortName), description: Type.Optional(Desc), enabled: Type.Optional(Type.Boolean()), tags: Type.Optional(Tags),
  options: Type.Optional(Type.Object({})),
}) });

export const ProjectCreate = Type.Object({ project: Type.Object({
  name: ShortName, domain_id: Type.Optional(NullableId), parent_id: Type.Optional(NullableId), description: Type.Optional(Desc),
  enabled: Type.Optional(Type.Boolean()), is_domain: Type.Optional(Type.Boolean()), tags: Type.Optional(Tags),
  options: Type.Optional(Type.Object({})),
}) });
export const ProjectUpdate = Type.Object({ project: Type.Object({
  name: Type.Optional(ShortName), description: Type.Optional(Desc), enabled: Type.Optional(Type.Boolean()),
  tags: Type.Optional(Tags), domain_id: Type.Optional(Id), parent_id: Type.Optional(NullableId),
  is_domain: Type.Optional(Type.Boolean()), options: Type.Optional(Type.Object({})),
}) });
export const TagsBody = Type.Object({ tags: Tags });

export const USER_OPTIONS = ['ignore_change_password_upon_first_use', 'ignore_password_expiry',
  'ignore_lockout_failure_attempts', 'lock_password', 'multi_factor_auth_enabled', 'multi_factor_auth_rules', 'ignore_user_inactivity'];
const UserOptions = Type.Object({}, { additionalProperties: Type.Union([Type.Boolean(), Type.Array(Type.Array(Type.String())), Type.Null()]) });
const UserFields = {
  domain_id: Type.Optional(Id), password: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 4096 }), Type.Null()])),
  enabled: Type.Optional(Type.Boolean()), default_project_id: Type.Optional(NullableId), description: Type.Optional(Desc),
  email: Type.Optional(Type.Union([Type.String({ maxLength: 255 }), Type.Null()])), options: Type.Optional(UserOptions),
};
export const UserCreate = Type.Object({ user: Type.Object({ name: Name, ...UserFields }) });
export const UserUpdate = Type.Object({ user: Type.Object({ name: Type.Optional(Name), ...UserFields }) });
export const PasswordChange = Type.Object({ user: Type.Object({
  password: Type.String({ minLength: 1, maxLength: 4096 }), original_password: Type.String({ maxLength: 4096 }),
}) });

export const GroupCreate = Type.Object({ group: Type.Object({ name: Name, domain_id: Type.Optional(Id), description: Type.Optional(Desc) }) });
export const GroupUpdate = Type.Object({ group: Type.Object({ name: Type.Optional(Name), description: Type.Optional(Desc), domain_id: Type.Optional(Id) }) });

export const RoleCreate = Type.Object({ role: Type.Object({
  name: Name, domain_id: Type.Optional(NullableId), description: Type.Optional(Desc), options: Type.Optional(Type.Object({})),
}) });
export const RoleUpdate = Type.Object({ role: Type.Object({
  name: Type.Optional(Name), description: Type.Optional(Desc), options: Type.Optional(Type.Object({})), domain_id: Type.Optional(NullableId),
}) });

export const RegionCreate = Type.Object({ region: Type.Object({
  id: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })), description: Type.Optional(Desc),
  parent_region_id: Type.Optional(NullableId),
}) });
export const RegionUpdate = Type.Object({ region: Type.Object({ description: Type.Optional(Desc), parent_region_id: Type.Optional(NullableId) }) });

export const ServiceCreate = Type.Object({ service: Type.Object({
  type: Type.String({ minLength: 1, maxLength: 255 }), name: Type.Optional(Type.String({ maxLength: 255 })),
  description: Type.Optional(Desc), enabled: Type.Optional(Type.Boolean()),
}) });
export const ServiceUpdate = Type.Object({ service: Type.Object({
  type: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })), name: Type.Optional(Type.String({ maxLength: 255 })),
  description: Type.Optional(Desc), enabled: Type.Optional(Type.Boolean()),
}) });

const Interface = Type.Union([Type.Literal('public'), Type.Literal('internal'), Type.Literal('admin')]);
const Url = Type.String({ minLength: 1, maxLength: 2048, pattern: '^[a-zA-Z][a-zA-Z0-9+.-]*://' });
export const EndpointCreate = Type.Object({ endpoint: Type.Object({
  service_id: Id, interface: Interface, url: Url, region_id: Type.Optional(NullableId), region: Type.Optional(NullableId),
  enabled: Type.Optional(Type.Boolean()),
}) });
export const EndpointUpdate = Type.Object({ endpoint: Type.Object({
  service_id: Type.Optional(Id), interface: Type.Optional(Interface), url: Type.Optional(Url),
  region_id: Type.Optional(NullableId), region: Type.Optional(NullableId), enabled: Type.Optional(Type.Boolean()),
}) });

export const ImpliedRolePath = Type.Object({ prior: Id, implied: Id });
export const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 255 }) });

const RoleRef = Type.Object({ id: Type.Optional(Id), name: Type.Optional(Name), domain_id: Type.Optional(NullableId) });
export const AppCredCreate = Type.Object({ application_credential: Type.Object({
  name: Name, description: Type.Optional(Desc), secret: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
  expires_at: Type.Optional(Type.Union([Type.String({ minLength: 10, maxLength: 64 }), Type.Null()])),
  roles: Type.Optional(Type.Array(RoleRef, { maxItems: 100 })), unrestricted: Type.Optional(Type.Boolean()),
  access_rules: Type.Optional(Type.Array(Type.Object({}), { maxItems: 0 })),
}, { additionalProperties: false }) });

export const Ec2Create = Type.Object({ tenant_id: Id, user_id: Type.Optional(Id) });

export const CredentialCreate = Type.Object({ credential: Type.Object({
  blob: Type.String({ minLength: 1, maxLength: 65535 }), type: Type.String({ minLength: 1, maxLength: 255 }),
  user_id: Id, project_id: Type.Optional(NullableId),
}) });
export const CredentialUpdate = Type.Object({ credential: Type.Object({
  blob: Type.Optional(Type.String({ minLength: 1, maxLength: 65535 })), type: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  user_id: Type.Optional(Id), project_id: Type.Optional(NullableId),
}) });

const LimitValue = Type.Integer({ minimum: -1, maximum: 2147483647 });
const RegisteredLimit = Type.Object({
  service_id: Id, region_id: Type.Optional(NullableId), resource_name: Type.String({ minLength: 1, maxLength: 255 }),
  default_limit: LimitValue, description: Type.Optional(Desc),
}, { additionalProperties: false });
export const RegisteredLimitsCreate = Type.Object({ registered_limits: Type.Array(RegisteredLimit, { minItems: 1, maxItems: 100 }) });
export const RegisteredLimitUpdate = Type.Object({ registered_limit: Type.Partial(RegisteredLimit) });
const Limit = Type.Object({
  project_id: Type.Optional(Id), domain_id: Type.Optional(Id), service_id: Id, region_id: Type.Optional(NullableId),
  resource_name: Type.String({ minLength: 1, maxLength: 255 }), resource_limit: LimitValue, description: Type.Optional(Desc),
}, { additionalProperties: false });
export const LimitsCreate = Type.Object({ limits: Type.Array(Limit, { minItems: 1, maxItems: 100 }) });
export const LimitUpdate = Type.Object({ limit: Type.Object({ resource_limit: Type.Optional(LimitValue), description: Type.Optional(Desc) }, { additionalProperties: false }) });
