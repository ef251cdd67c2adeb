import assert from 'node:assert/strict';
import {
  CAPABILITY_TRAITS_MAP,
  ZED_TRACKER_DEFAULTS,
  allocationRatios,
  allowResourceRemoval,
  capabilitiesAsTraits,
  computeInventories,
  computeNodeUsage,
  convertMbToCeilGb,
  driverTraits,
  mergeProviderTraits,
  nodeAllocationRatios,
  type InstanceUsage,
  type TrackerOptions,
} from '../../../src/compute/resource-tracker-math.js';
import { CONTAINER_DRIVER_CAPABILITIES } from '../../../src/virt/driver.js';

const DEFAULTS: TrackerOptions = { ...ZED_TRACKER_DEFAULTS };
const TINY = { memory_mb: 512, vcpus: 1, root_gb: 1, ephemeral_gb: 0, swap: 0 };

function inst(uuid: string, over: Partial<InstanceUsage> = {}): InstanceUsage {
  return { uuid, vm_state: 'active', task_state: null, os_type: null, project_id: 'p1', flavor: TINY, ...over };
}

describe('compute/resource-tracker-math', () => {
  describe('computeInventories (virt/fake.py + libvirt update_provider_tree, driver._get_allocation_ratios)', () => {
    it("gives exactly the body the real Zed nova-compute PUT for the fake driver's host (lab compute-startup.http.log)", () => {
      // FakeDriver: vcpus 1000, memory_mb 800000, local_gb 600000; nova.conf defaults.
      const inv = computeInventories({ vcpus: 1000, memory_mb: 800000, local_gb: 600000 }, DEFAULTS);
      assert.deepEqual(inv, {
        VCPU: { total: 1000, min_unit: 1, max_unit: 1000, step_size: 1, allocation_ratio: 16.0, reserved: 0 },
        MEMORY_MB: { total: 800000, min_unit: 1, max_unit: 800000, step_size: 1, allocation_ratio: 1.5, reserved: 512 },
        DISK_GB: { total: 600000, min_unit: 1, max_unit: 600000, step_size: 1, allocation_ratio: 1.0, reserved: 0 },
      });
    });

    it('_get_allocation_ratios: an explicit [DEFAULT] *_allocation_ratio wins over initial_* and over placement', () => {
      const opts = { ...DEFAULTS, cpu_allocation_ratio: 4.0, ram_allocation_ratio: 1.0, disk_allocation_ratio: 2.0 };
      const existing = {
        VCPU: { allocation_ratio: 8 },
        MEMORY_MB: { allocation_ratio: 3 },
        DISK_GB: { allocation_ratio: 5 },
      };
      assert.deepEqual(allocationRatios(opts), { VCPU: 4, MEMORY_MB: 1, DISK_GB: 2 });
      assert.deepEqual(allocationRatios(opts, existing), { VCPU: 4, MEMORY_MB: 1, DISK_GB: 2 });
    });

    it('_get_allocation_ratios: null and 0.0 are unset (`if conf_ratio:`), so initial_* is used for a new provider', () => {
      const opts = {
        ...DEFAULTS,
        cpu_allocation_ratio: null,
        ram_allocation_ratio: 0.0,
        initial_disk_allocation_ratio: 1.25,
      };
      assert.deepEqual(allocationRatios(opts), { VCPU: 16, MEMORY_MB: 1.5, DISK_GB: 1.25 });
    });

    it("_get_allocation_ratios: unset ratio keeps the provider's current ratio (set through the placement API)", () => {
      const existing = { VCPU: { allocation_ratio: 2.5 } };
      const inv = computeInventories({ vcpus: 4, memory_mb: 1024, local_gb: 10 }, DEFAULTS, existing);
      assert.equal(inv.VCPU?.allocation_ratio, 2.5);
      assert.equal(inv.MEMORY_MB?.allocation_ratio, 1.5, 'class not in placement yet: initial_ram_allocation_ratio');
    });

    it('_get_reserved_host_disk_gb_from_config: reserved DISK_GB = ceil(reserved_host_disk_mb / 1024)', () => {
      assert.deepEqual([0, 1, 1024, 1025, 2048, 5000].map(convertMbToCeilGb), [0, 1, 1, 2, 2, 5]);
      const inv = computeInventories(
        { vcpus: 2, memory_mb: 4096, local_gb: 50 },
        { ...DEFAULTS, reserved_host_disk_mb: 1500 },
      );
      assert.equal(inv.DISK_GB?.reserved, 2);
    });

    it('reserved VCPU = reserved_host_cpus and MEMORY_MB = reserved_host_memory_mb', () => {
      const opts = { ...DEFAULTS, reserved_host_cpus: 1, reserved_host_memory_mb: 2048 };
      const inv = computeInventories({ vcpus: 8, memory_mb: 16384, local_gb: 100 }, opts);
      assert.equal(inv.VCPU?.reserved, 1);
      assert.equal(inv.MEMORY_MB?.reserved, 2048);
    });

    it('libvirt update_provider_tree: a class whose total is 0 is not reported (placement forbids total=0)', () => {
      const inv = computeInventories({ vcpus: 4, memory_mb: 2048, local_gb: 0 }, DEFAULTS);
      assert.deepEqual(Object.keys(inv), ['VCPU', 'MEMORY_MB']);
      assert.deepEqual(computeInventories({ vcpus: 0, memory_mb: 0, local_gb: 0 }, DEFAULTS), {});
    });

    it('totals are int()-ed like libvirt does (fractional GB from a filesystem)', () => {
      const inv = computeInventories({ vcpus: 2, memory_mb: 1000.9, local_gb: 99.7 }, DEFAULTS);
      assert.equal(inv.MEMORY_MB?.total, 1000);
      assert.equal(inv.DISK_GB?.max_unit, 99);
    });
  });

  describe('computeNodeUsage (resource_tracker._update_usage_from_instances / _update_usage, compute/stats.py)', () => {
    const HOST = { vcpus: 4, memory_mb: 8192, local_gb: 100 };

    it('_update_usage_from_instances: with no instances usage is the reserved amounts', () => {
      const u = computeNodeUsage(HOST, [], { ...DEFAULTS, reserved_host_cpus: 1 });
      assert.deepEqual(u, {
        vcpus: 4,
        memory_mb: 8192,
        local_gb: 100,
        vcpus_used: 1,
        memory_mb_used: 512,
        local_gb_used: 0,
        free_ram_mb: 7680,
        free_disk_gb: 100,
        running_vms: 0,
        current_workload: 0,
        stats: { failed_builds: '0' },
      });
    });

    it('_update_usage_from_instances: local_gb_used starts at int(reserved_host_disk_mb / 1024) (truncated, unlike the inventory)', () => {
      const u = computeNodeUsage(HOST, [], { ...DEFAULTS, reserved_host_disk_mb: 1536 });
      assert.equal(u.local_gb_used, 1);
      assert.equal(u.free_disk_gb, 99);
    });

    it('_update_usage: each instance adds its flavor, memory_mb_used includes reserved_host_memory_mb', () => {
      const u = computeNodeUsage(
        HOST,
        [inst('a'), inst('b', { flavor: { ...TINY, vcpus: 2, ephemeral_gb: 5 } })],
        DEFAULTS,
      );
      assert.equal(u.vcpus_used, 3);
      assert.equal(u.memory_mb_used, 512 + 512 + 512);
      assert.equal(u.local_gb_used, 1 + 1 + 5);
      assert.equal(u.free_ram_mb, 8192 - 1536);
      assert.equal(u.free_disk_gb, 100 - 7);
      assert.equal(u.running_vms, 2);
    });

    it('_get_usage_dict: a volume-backed instance has root_gb 0; swap counts swap/1024, truncated at each step', () => {
      const swap = { ...TINY, root_gb: 10, swap: 512 };
      const u = computeNodeUsage(
        HOST,
        [inst('a', { is_volume_backed: true, flavor: swap }), inst('b', { flavor: swap })],
        DEFAULTS,
      );
      // a: 0 + int(0 + 0.5) = 0; b: int(0 + 10) = 10, int(10 + 0.5) = 10
      assert.equal(u.local_gb_used, 10);
      const big = computeNodeUsage(HOST, [inst('c', { flavor: { ...TINY, root_gb: 0, swap: 2048 } })], DEFAULTS);
      assert.equal(big.local_gb_used, 2);
    });

    it('vm_states.allow_resource_removal: deleted and shelved_offloaded (unless spawning) are not counted', () => {
      assert.equal(allowResourceRemoval('deleted'), true);
      assert.equal(allowResourceRemoval('shelved_offloaded', null), true);
      assert.equal(allowResourceRemoval('shelved_offloaded', 'spawning'), false);
      assert.equal(allowResourceRemoval('stopped'), false);
      const u = computeNodeUsage(
        HOST,
        [
          inst('a', { vm_state: 'stopped' }),
          inst('b', { vm_state: 'deleted' }),
          inst('c', { vm_state: 'shelved_offloaded' }),
          inst('d', { vm_state: 'shelved_offloaded', task_state: 'spawning' }),
          inst('a'), // tracked_instances: a uuid counts once
        ],
        DEFAULTS,
      );
      assert.equal(u.running_vms, 2);
      assert.equal(u.vcpus_used, 2);
      assert.equal(u.memory_mb_used, 512 + 1024);
    });

    it('free_ram_mb and free_disk_gb may be negative ("depending on policy")', () => {
      const u = computeNodeUsage({ vcpus: 1, memory_mb: 1024, local_gb: 1 }, [inst('a'), inst('b')], DEFAULTS);
      assert.equal(u.free_ram_mb, 1024 - 1536);
      assert.equal(u.free_disk_gb, -1);
    });

    it("stats: same keys, order and string values as the real compute's ComputeNode.save (lab compute-restart.jsonl)", () => {
      const p = '78546ee0e6bc4b498a8b10c9123ac090';
      const u = computeNodeUsage(HOST, [inst('399a22ee-f543-44ca-90f1-ac40ca2cdd99', { project_id: p })], DEFAULTS);
      assert.deepEqual(Object.entries(u.stats), [
        ['failed_builds', '0'],
        ['num_instances', '1'],
        ['num_vm_active', '1'],
        ['num_task_None', '1'],
        ['num_os_type_None', '1'],
        [`num_proj_${p}`, '1'],
        ['io_workload', '0'],
      ]);
    });

    it('Stats.calculate_workload / io_workload: task states other than None, building VMs and I/O tasks', () => {
      const u = computeNodeUsage(
        HOST,
        [
          inst('a', { vm_state: 'building', task_state: 'spawning' }),
          inst('b', { task_state: 'image_snapshot' }),
          inst('c', { task_state: 'powering-off' }),
          inst('d'),
        ],
        DEFAULTS,
        3,
      );
      assert.equal(u.current_workload, 3);
      assert.equal(u.stats.io_workload, '2');
      assert.equal(u.stats.failed_builds, '3');
      assert.equal(u.stats.num_vm_building, '1');
      assert.equal(u.stats.num_task_None, '1');
    });
  });

  describe('nodeAllocationRatios (resource_tracker._copy_resources)', () => {
    it('a new ComputeNode takes initial_*_allocation_ratio, even when *_allocation_ratio is set', () => {
      assert.deepEqual(nodeAllocationRatios({ ...DEFAULTS, cpu_allocation_ratio: 2 }), {
        cpu_allocation_ratio: 16,
        ram_allocation_ratio: 1.5,
        disk_allocation_ratio: 1,
      });
    });

    it('an existing one takes *_allocation_ratio when set (not None, not 0.0), else keeps its value', () => {
      const cur = { cpu_allocation_ratio: 8, ram_allocation_ratio: 1.2, disk_allocation_ratio: 1.1 };
      assert.deepEqual(nodeAllocationRatios({ ...DEFAULTS, cpu_allocation_ratio: 2, ram_allocation_ratio: 0 }, cur), {
        cpu_allocation_ratio: 2,
        ram_allocation_ratio: 1.2,
        disk_allocation_ratio: 1.1,
      });
    });
  });

  describe('traits (driver.CAPABILITY_TRAITS_MAP, capabilities_as_traits, resource_tracker._get_traits)', () => {
    it('our container drivers report COMPUTE_NODE and COMPUTE_IMAGE_TYPE_RAW only', () => {
      assert.deepEqual(driverTraits(CONTAINER_DRIVER_CAPABILITIES), ['COMPUTE_NODE', 'COMPUTE_IMAGE_TYPE_RAW']);
    });

    it('_sync_compute_service_disabled_trait: COMPUTE_STATUS_DISABLED when the service is disabled', () => {
      assert.deepEqual(driverTraits(CONTAINER_DRIVER_CAPABILITIES, { disabled: true }), [
        'COMPUTE_NODE',
        'COMPUTE_IMAGE_TYPE_RAW',
        'COMPUTE_STATUS_DISABLED',
      ]);
    });

    it('_check_image_type_exclude_list: an excluded image type is reported unsupported', () => {
      assert.deepEqual(driverTraits(CONTAINER_DRIVER_CAPABILITIES, { imageTypeExcludeList: ['raw'] }), [
        'COMPUTE_NODE',
      ]);
      assert.equal(capabilitiesAsTraits(CONTAINER_DRIVER_CAPABILITIES).get('COMPUTE_IMAGE_TYPE_RAW'), true);
    });

    it("nova's FakeDriver capabilities give the trait set the real nova-compute PUT (lab compute-startup.http.log)", () => {
      // nova/virt/fake.py FakeDriver.capabilities; remote-managed ports also need PCI devices, which it has not.
      const fake = {
        has_imagecache: true,
        supports_evacuate: true,
        supports_migrate_to_same_host: false,
        supports_attach_interface: true,
        supports_device_tagging: true,
        supports_tagged_attach_interface: true,
        supports_tagged_attach_volume: true,
        supports_extend_volume: true,
        supports_multiattach: true,
        supports_trusted_certs: true,
        supports_pcpus: false,
        supports_accelerators: true,
        supports_remote_managed_ports: true,
        supports_image_type_raw: true,
        supports_image_type_vhd: false,
      };
      const recorded = [
        'COMPUTE_TRUSTED_CERTS',
        'COMPUTE_VOLUME_MULTI_ATTACH',
        'COMPUTE_ACCELERATORS',
        'COMPUTE_NET_ATTACH_INTERFACE_WITH_TAG',
        'COMPUTE_NET_ATTACH_INTERFACE',
        'COMPUTE_VOLUME_EXTEND',
        'COMPUTE_VOLUME_ATTACH_WITH_TAG',
        'COMPUTE_IMAGE_TYPE_RAW',
        'COMPUTE_NODE',
        'COMPUTE_DEVICE_TAGGING',
      ];
      assert.deepEqual(driverTraits(fake).sort(), recorded.sort());
    });

    it('_get_traits: keeps traits set by others, drops unsupported capability traits, syncs DISABLED', () => {
      const current = ['CUSTOM_RACK_A', 'COMPUTE_VOLUME_EXTEND', 'COMPUTE_STATUS_DISABLED', 'HW_CPU_X86_AVX2'];
      const enabled = mergeProviderTraits(current, CONTAINER_DRIVER_CAPABILITIES, { disabled: false });
      assert.deepEqual(enabled.sort(), ['COMPUTE_IMAGE_TYPE_RAW', 'COMPUTE_NODE', 'CUSTOM_RACK_A', 'HW_CPU_X86_AVX2']);
      const unknownService = mergeProviderTraits(current, CONTAINER_DRIVER_CAPABILITIES);
      assert.ok(unknownService.includes('COMPUTE_STATUS_DISABLED'), 'service record missing: DISABLED left as it is');
    });

    it('CAPABILITY_TRAITS_MAP has the 27 entries of Zed', () => {
      assert.equal(Object.keys(CAPABILITY_TRAITS_MAP).length, 27);
    });
  });
});
