/** Nova's vm_state / task_state / power_state values (nova/compute/{vm,task,power}_states.py). */
export const VmState = {
  ACTIVE: 'active',
  BUILDING: 'building',
  PAUSED: 'paused',
  SUSPENDED: 'suspended',
  STOPPED: 'stopped',
  RESIZED: 'resized',
  SHELVED: 'shelved',
  SHELVED_OFFLOADED: 'shelved_offloaded',
  DELETED: 'deleted',
  ERROR: 'error',
} as const;

export const TaskState = {
  SCHEDULING: 'scheduling',
  NETWORKING: 'networking',
  BLOCK_DEVICE_MAPPING: 'block_device_mapping',
  SPAWNING: 'spawning',
  DELETING: 'deleting',
  SOFT_DELETING: 'soft-deleting',
  POWERING_OFF: 'powering-off',
  REBUILDING: 'rebuilding',
  REBUILD_BLOCK_DEVICE_MAPPING: 'rebuild_block_device_mapping',
  REBUILD_SPAWNING: 'rebuild_spawning',
  RESIZE_PREP: 'resize_prep',
  RESIZE_MIGRATING: 'resize_migrating',
  RESIZE_MIGRATED: 'resize_migrated',
  RESIZE_FINISH: 'resize_finish',
  RESIZE_REVERTING: 'resize_reverting',
  RESIZE_CONFIRMING: 'resize_confirming',
  POWERING_ON: 'powering-on',
  SHELVING: 'shelving',
  SHELVING_IMAGE_PENDING_UPLOAD: 'shelving_image_pending_upload',
  SHELVING_IMAGE_UPLOADING: 'shelving_image_uploading',
  SHELVING_OFFLOADING: 'shelving_offloading',
  UNSHELVING: 'unshelving',
} as const;

export const PowerStateValue = {
  NOSTATE: 0,
  RUNNING: 1,
  PAUSED: 3,
  SHUTDOWN: 4,
  CRASHED: 6,
  SUSPENDED: 7,
} as const;
