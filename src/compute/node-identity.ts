/**
 * The stable compute-node identity (nova/virt/node.py, nova 27+): the
 * ComputeNode uuid kept in `$state_path/compute_id`, so a host keeps its
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

/** The uuid in `<statePath>/compute_id`, or undefined when there is no such file. */
export function readNodeIdentity(statePath: string): string | undefined {
  const file = join(statePath, COMPUTE_ID_FILE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const uuid = text.trim();
  if (!UUID.test(uuid)) {
    throw new InvalidNodeIdentityError(`${file} holds ${JSON.stringify(uuid.slice(0, 60))}, not a compute node uuid`);
  }
  return uuid.toLowerCase();
}

/** Writes the node uuid (write then rename: a crash never leaves half a uuid). */
export function writeNodeIdentity(statePath: string, uuid: string): void {
  mkdirSync(statePath, { recursive: true });
  const file = join(statePath, COMPUTE_ID_FILE);
  writeFileSync(`${file}.tmp`, `${uuid}\n`, { mode: 0o644 });
  renameSync(`${file}.tmp`, file);
}
