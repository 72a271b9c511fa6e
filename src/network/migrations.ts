// Tables of the networking service (network_*). Each resource keeps its full API attributes as
// JSON in `data`, and copies the attributes it is looked up, filtered or constrained by into
// real columns, so that uniqueness (one IP per network, one MAC per network, one segment id)
// is enforced by the database on both engines.
import { type Kysely, type Migration } from 'kysely';
import type { ServiceMigrations } from '../core/db.js';

async function resource(db: Kysely<any>, table: string, cols: Array<[string, 'text' | 'integer']>): Promise<void> {
  let t = db.schema.createTable(table)
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('project_id', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('name', 'text', (c) => c.notNull().defaultTo(''));
  for (const [name, type] of cols) t = t.addColumn(name, type);
  await t.addColumn('data', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex(`${table}_project`).on(table).column('project_id').execute();
}

const init: Migration = {
  async up(db) {
    await resource(db, 'network_networks', [['shared', 'integer'], ['router_external', 'integer']]);
    await resource(db, 'network_subnets', [['network_id', 'text'], ['cidr', 'text'], ['ip_version', 'integer']]);
    await db.schema.createIndex('network_subnets_net').on('network_subnets').column('network_id').execute();
    await resource(db, 'network_ports', [['network_id', 'text'], ['mac_address', 'text'], ['device_id', 'text'],
      ['device_owner', 'text'], ['host_id', 'text']]);
    await db.schema.createIndex('network_ports_mac').on('network_ports').columns(['network_id', 'mac_address']).unique().execute();
    await db.schema.createIndex('network_ports_device').on('network_ports').column('device_id').execute();
    await db.schema.createIndex('network_ports_host').on('network_ports').column('host_id').execute();
    await resource(db, 'network_routers', []);
    await resource(db, 'network_floatingips', [['floating_network_id', 'text'], ['floating_ip_address', 'text'],
      ['port_id', 'text'], ['router_id', 'text']]);
    await resource(db, 'network_security_groups', []);
    await resource(db, 'network_sg_rules', [['security_group_id', 'text'], ['remote_group_id', 'text']]);
    await db.schema.createIndex('network_sg_rules_sg').on('network_sg_rules').column('security_group_id').execute();
    await resource(db, 'network_rbac_policies', [['object_type', 'text'], ['object_id', 'text'], ['action', 'text'],
      ['target_tenant', 'text']]);
    await db.schema.createIndex('network_rbac_unique').on('network_rbac_policies')
      .columns(['object_type', 'object_id', 'action', 'target_tenant']).unique().execute();

    // One row per address in use on a network: the concurrency guard of IPAM.
    await db.schema.createTable('network_ip_allocations')
      .addColumn('network_id', 'text', (c) => c.notNull())
      .addColumn('ip_address', 'text', (c) => c.notNull())
      .addColumn('subnet_id', 'text', (c) => c.notNull())
      .addColumn('port_id', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('network_ip_allocations_pk', ['network_id', 'ip_address'])
      .execute();
    await db.schema.createIndex('network_ip_alloc_port').on('network_ip_allocations').column('port_id').execute();
    await db.schema.createIndex('network_ip_alloc_subnet').on('network_ip_allocations').column('subnet_id').execute();
    // Segments: a (type, physnet, id) is held by at most one network.
    await db.schema.createTable('network_segments')
      .addColumn('network_id', 'text', (c) => c.primaryKey())
      .addColumn('network_type', 'text', (c) => c.notNull())
      .addColumn('physical_network', 'text', (c) => c.notNull())
      .addColumn('segmentation_id', 'integer', (c) => c.notNull())
      .addUniqueConstraint('network_segments_unique', ['network_type', 'physical_network', 'segmentation_id'])
      .execute();
    await db.schema.createTable('network_port_sgs')
      .addColumn('port_id', 'text', (c) => c.notNull())
      .addColumn('security_group_id', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('network_port_sgs_pk', ['port_id', 'security_group_id'])
      .execute();
    await db.schema.createIndex('network_port_sgs_sg').on('network_port_sgs').column('security_group_id').execute();
    // The `default` security group of each project, created once even under concurrent first use.
    await db.schema.createTable('network_default_sgs')
      .addColumn('project_id', 'text', (c) => c.primaryKey())
      .addColumn('security_group_id', 'text', (c) => c.notNull())
      .execute();
    // Host agents: where VXLAN peers are reached, and when they last reported.
    await db.schema.createTable('network_agents')
      .addColumn('host_id', 'text', (c) => c.primaryKey())
      .addColumn('underlay_ip', 'text')
      .addColumn('heartbeat_at', 'text', (c) => c.notNull())
      .execute();
  },
};

// network_revision, one row: a counter bumped by every committed change that can alter a host's desired data plane,
// so the agents' long polls cost one primary-key read while nothing changed (see netagent).
const revision: Migration = {
  async up(db) {
    await db.schema.createTable('network_revision')
      .addColumn('id', 'integer', (c) => c.primaryKey())
      .addColumn('revision', 'bigint', (c) => c.notNull())
      .execute();
    await db.insertInto('network_revision').values({ id: 1, revision: 1 }).execute();
    // Neutron's agents (/v2.0/agents) are derived from the registered hosts; what an admin sets
    // on one (admin_state_up, description) is kept here, by agent id.
    await db.schema.alterTable('network_agents').addColumn('registered_at', 'text').execute();
    await db.schema.createTable('network_agent_settings')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('admin_state_up', 'integer', (c) => c.notNull())
      .addColumn('description', 'text', (c) => c.notNull())
      .execute();
  },
};

// A port being live-migrated is also plugged on the destination host (its data plane builds the
// network and plugs the tap before the guest resumes there): indexed, as host states look it up.
const migratingTo: Migration = {
  async up(db) {
    await db.schema.alterTable('network_ports').addColumn('migrating_to', 'text').execute();
    await db.schema.createIndex('network_ports_migrating_to').on('network_ports').column('migrating_to').execute();
  },
};

export const networkMigrations: ServiceMigrations = { '0001_init': init, '0002_revision': revision, '0003_migrating_to': migratingTo };
