/** Placement API shapes, as the Zed placement service sends them (field names are placement's). */

/** One inventory record of a resource class on a provider. */
export interface InventoryRecord {
  total: number;
  reserved: number;
  min_unit: number;
  max_unit: number;
  step_size: number;
  allocation_ratio: number;
}

/** Inventories keyed by resource class (VCPU, MEMORY_MB, DISK_GB, CUSTOM_*). */
export type Inventories = Record<string, InventoryRecord>;

/**
 * What a caller may set: `total` is required, the other fields take
 * placement's defaults when left out (reserved 0, min_unit 1, max_unit
 * 2147483647, step_size 1, allocation_ratio 1.0).
 */
export type InventoryInput = Pick<InventoryRecord, 'total'> & Partial<InventoryRecord>;

export interface ResourceProvider {
  uuid: string;
  name: string;
  generation: number;
}

export interface ProviderInventories {
  /** resource_provider_generation */
  generation: number;
  inventories: Inventories;
}

export interface ProviderTraits {
  /** resource_provider_generation */
  generation: number;
  traits: string[];
}

/** Resources a consumer holds on one provider. */
export interface ConsumerResources {
  resources: Record<string, number>;
}

/** GET /resource_providers/{uuid}/allocations: consumers on one provider. */
export interface ProviderAllocations {
  /** resource_provider_generation */
  generation: number;
  /** Keyed by consumer (instance or migration) uuid. */
  allocations: Record<string, ConsumerResources>;
}

/** GET /allocations/{consumer} at microversion 1.28. */
export interface ConsumerAllocations {
  /** Keyed by provider uuid; empty when placement knows no such consumer. */
  allocations: Record<string, ConsumerResources & { generation?: number }>;
  /** Absent for an unknown consumer. */
  consumer_generation?: number | null;
  project_id?: string;
  user_id?: string;
}

/** Result of a set call: the provider's state afterwards and whether a PUT was sent. */
export interface SetResult {
  changed: boolean;
}

/** One consumer in a PUT /allocations/{consumer} or POST /allocations body at 1.28. */
export interface AllocationWrite {
  /** Keyed by provider uuid; `{}` removes the consumer's allocations. */
  allocations: Record<string, ConsumerResources>;
  project_id: string;
  user_id: string;
  /** null for a consumer placement does not know yet. */
  consumer_generation: number | null;
}

/** Outcome of an allocation write; a 409 carries placement's error code and detail. */
export type AllocationWriteResult = { ok: true } | { ok: false; status: number; code?: string; detail?: string };
