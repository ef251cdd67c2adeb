/**
 * The image of the netns holder containers (docs/docker-driver.md
 * "Networking"): a FROM-scratch image holding one static binary, Debian's
 * busybox-static `/bin/busybox`, whose `sleep infinity` keeps the instance's
 * network namespace alive. Built by the driver itself (docker import of a
 * tarball made here), so the agent needs no registry or hub for it, tagged
 * with the binary's digest so a changed binary gives a new image and an
 * unchanged one is reused.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { AgentError } from '../../common/errors.js';

export const PAUSE_REPO = 'nova-docker/pause';
/** Where the binary sits inside the image. */
export const PAUSE_BINARY_PATH = '/bin/busybox';
/** The holder's command: sleeps until killed (StopSignal SIGKILL). */
export const PAUSE_CMD = [PAUSE_BINARY_PATH, 'sleep', 'infinity'];
/** Debian's busybox-static. */
export const DEFAULT_PAUSE_BINARY = '/bin/busybox';

export class PauseImageError extends AgentError {}

const BLOCK = 512;
/** Fixed mtime: the same binary gives the same layer. */
const MTIME = 1_700_000_000;

function tarHeader(name: string, size: number, type: '0' | '5', mode: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 100, 'utf8');
  h.write(`${mode.toString(8).padStart(7, '0')}\0`, 100, 8, 'latin1');
  h.write('0000000\0', 108, 8, 'latin1');
  h.write('0000000\0', 116, 8, 'latin1');
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 12, 'latin1');
  h.write(`${MTIME.toString(8).padStart(11, '0')}\0`, 136, 12, 'latin1');
  h.write(type, 156, 1, 'latin1');
  h.write('ustar\0', 257, 6, 'latin1');
  h.write('00', 263, 2, 'latin1');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  return h;
}

/** A root filesystem tarball: /bin/busybox (0755) and the empty directories a container expects. */
export function pauseRootfsTar(binary: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (const dir of ['bin/', 'etc/', 'proc/', 'sys/', 'dev/', 'tmp/']) parts.push(tarHeader(dir, 0, '5', 0o755));
  parts.push(tarHeader(PAUSE_BINARY_PATH.slice(1), binary.length, '0', 0o755), binary);
  const rest = binary.length % BLOCK;
  if (rest) parts.push(Buffer.alloc(BLOCK - rest));
  parts.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(parts);
}

/**
 * Whether an ELF executable runs without a dynamic loader (no PT_INTERP
 * program header): in a scratch image there is none.
 */
export function isStaticElf(b: Buffer): boolean {
  if (b.length < 64 || b.readUInt32BE(0) !== 0x7f454c46) return false;
  const is64 = b[4] === 2;
  const le = b[5] === 1;
  const u16 = (o: number) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
  const u32 = (o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const phoff = is64 ? Number(le ? b.readBigUInt64LE(32) : b.readBigUInt64BE(32)) : u32(28);
  const phentsize = u16(is64 ? 54 : 42);
  const phnum = u16(is64 ? 56 : 44);
  for (let i = 0; i < phnum; i++) {
    const off = phoff + i * phentsize;
    if (off + 4 > b.length) return false;
    if (u32(off) === 3) return false; // PT_INTERP
  }
  return true;
}

export interface PauseImageDocker {
  inspectImage(ref: string): Promise<unknown>;
  importImage(tar: Buffer, repo: string, tag: string): Promise<string>;
}

/**
 * The holder image's reference, importing it when the Engine does not have
 * it yet. Concurrent callers share one import.
 */
export class PauseImage {
  private pending: Promise<string> | undefined;

  constructor(
    private readonly docker: PauseImageDocker,
    private readonly binaryPath: string = DEFAULT_PAUSE_BINARY,
  ) {}

  ensure(): Promise<string> {
    if (!this.pending) {
      const p = this.build();
      this.pending = p;
      // a failure is retried by the next caller (the package may get installed meanwhile)
      p.catch(() => {
        if (this.pending === p) this.pending = undefined;
      });
    }
    return this.pending;
  }

  private async build(): Promise<string> {
    let binary: Buffer;
    try {
      binary = await readFile(this.binaryPath);
    } catch (err) {
      throw new PauseImageError(
        `the netns holder image needs a static busybox at ${this.binaryPath} (Debian package busybox-static): ` +
          (err as Error).message,
        { cause: err },
      );
    }
    if (!isStaticElf(binary)) {
      throw new PauseImageError(`${this.binaryPath} is not a statically linked executable (install busybox-static)`);
    }
    const tag = createHash('sha256').update(binary).digest('hex').slice(0, 16);
    const ref = `${PAUSE_REPO}:${tag}`;
    if (await this.docker.inspectImage(ref)) return ref;
    await this.docker.importImage(pauseRootfsTar(binary), PAUSE_REPO, tag);
    return ref;
  }
}
