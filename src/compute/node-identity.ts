/**
 * The stable compute-node identity (nova/virt/node.py, nova 27+): the
 * ComputeNode uuid kept in `compute_id` (written to `$state_path`, read
 * there and next to the config files), so a host keeps its
 * node (and its Placement provider) across a rename of the machine or a lost
 * database row instead of quietly becoming a new one.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const COMPUTE_ID_FILE = 'compute_id';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The file is there but does not hold a uuid: refusing beats registering a second node. */
export class InvalidNodeIdentityError extends Error {
  override name = 'InvalidNodeIdentityError';
}

/** A compute_id file found: its uuid and where. */
export interface NodeIdentity {
  uuid: string;
  file: string;
}

/**
 * nova/virt/node.py read_local_node_uuid: `compute_id` in each directory
 * (those of the --config-file arguments, then state_path; DevStack writes
 * /etc/nova/compute_id), the first one found; every file found must hold the
 * same uuid. Undefined when there is none.
 */
export function readNodeIdentity(dirs: readonly string[]): NodeIdentity | undefined {
  let first: NodeIdentity | undefined;
  for (const dir of dirs) {
    const file = join(dir, COMPUTE_ID_FILE);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    const uuid = text.trim().toLowerCase();
    if (!UUID.test(uuid)) {
      throw new InvalidNodeIdentityError(`${file} holds ${JSON.stringify(uuid.slice(0, 60))}, not a compute node uuid`);
    }
    if (first === undefined) first = { uuid, file };
    else if (first.uuid !== uuid) {
      throw new InvalidNodeIdentityError(`UUID ${uuid} in ${file} does not match ${first.uuid} in ${first.file}`);
    }
  }
  return first;
}

/** Writes the node uuid (write then rename: a crash never leaves half a uuid). */
export function writeNodeIdentity(statePath: string, uuid: string): void {
  mkdirSync(statePath, { recursive: true });
  const file = join(statePath, COMPUTE_ID_FILE);
  writeFileSync(`${file}.tmp`, `${uuid}\n`, { mode: 0o644 });
  renameSync(`${file}.tmp`, file);
}
