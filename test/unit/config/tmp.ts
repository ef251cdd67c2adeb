import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/** A scratch directory under os.tmpdir(); call cleanup() in after/afterEach. */
export class TmpDir {
  readonly dir = mkdtempSync(join(tmpdir(), 'nova-docker-config-'));

  /** Writes `text` to `name` (sub-directories created) and returns the full path. */
  write(name: string, text: string): string {
    const path = join(this.dir, name);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, text);
    return path;
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export const MINIMAL = '[DEFAULT]\ntransport_url = rabbit://openstack:s3cret@127.0.0.1:5672/\n';
