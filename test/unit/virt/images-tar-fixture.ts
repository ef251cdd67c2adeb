/** Builds small tar archives (ustar, optional pax headers) for the image pipeline tests. */
import { createHash } from 'node:crypto';

export interface TarEntry {
  name: string;
  data?: Buffer | string;
  /** '0' file (default), '5' directory, 'x' pax header. */
  type?: string;
  /** pax records to put in an 'x' header before this entry. */
  pax?: Record<string, string>;
}

function header(name: string, size: number, type: string): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write('0000644\0', 100, 8, 'latin1');
  h.write('0000000\0', 108, 8, 'latin1');
  h.write('0000000\0', 116, 8, 'latin1');
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 12, 'latin1');
  h.write(`${(1700000000).toString(8).padStart(11, '0')}\0`, 136, 12, 'latin1');
  h.write(type, 156, 1, 'latin1');
  h.write('ustar\0', 257, 6, 'latin1');
  h.write('00', 263, 2, 'latin1');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  return h;
}

function pad(b: Buffer): Buffer {
  const rest = b.length % 512;
  return rest === 0 ? b : Buffer.concat([b, Buffer.alloc(512 - rest)]);
}

function paxData(records: Record<string, string>): Buffer {
  let out = '';
  for (const [k, v] of Object.entries(records)) {
    const body = ` ${k}=${v}\n`;
    let len = body.length + 1;
    while (String(len).length + body.length !== len) len = String(len).length + body.length;
    out += `${len}${body}`;
  }
  return Buffer.from(out, 'utf8');
}

export function tar(entries: TarEntry[], opts: { trailer?: boolean } = {}): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    if (e.pax) {
      const pd = paxData(e.pax);
      parts.push(header('PaxHeaders/x', pd.length, 'x'), pad(pd));
    }
    const type = e.type ?? '0';
    const data = type === '5' ? Buffer.alloc(0) : Buffer.from(e.data ?? '');
    parts.push(header(e.name, data.length, type), pad(data));
  }
  if (opts.trailer ?? true) parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export const CONFIG_HEX = createHash('sha256').update('config').digest('hex');

/** A `docker save`-shaped archive with one image (fake layer content). */
export function dockerSaveTar(
  opts: { repoTags?: string[]; images?: number; manifest?: boolean; layerKb?: number } = {},
): Buffer {
  const layer = tar([{ name: 'hello.txt', data: 'x'.repeat((opts.layerKb ?? 4) * 1024) }]);
  const manifest = Array.from({ length: opts.images ?? 1 }, () => ({
    Config: `${CONFIG_HEX}.json`,
    RepoTags: opts.repoTags ?? ['busybox:latest'],
    Layers: ['abc/layer.tar'],
  }));
  const entries: TarEntry[] = [
    { name: `${CONFIG_HEX}.json`, data: '{"architecture":"amd64"}' },
    { name: 'abc/', type: '5' },
    { name: 'abc/VERSION', data: '1.0' },
    { name: 'abc/layer.tar', data: layer },
  ];
  if (opts.manifest ?? true) entries.push({ name: 'manifest.json', data: JSON.stringify(manifest) });
  entries.push({ name: 'repositories', data: '{"busybox":{"latest":"abc"}}' });
  return tar(entries);
}

/** Reads back the entries of a tar (for asserting what docker would see). */
export function untar(buf: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let pos = 0;
  let paxPath: string | undefined;
  while (pos + 512 <= buf.length) {
    const h = buf.subarray(pos, pos + 512);
    if (h.every((b) => b === 0)) break;
    const nul = h.indexOf(0);
    const name = h.toString('utf8', 0, Math.min(nul === -1 ? 100 : nul, 100));
    const size = parseInt(h.toString('latin1', 124, 136).replace(/\0/g, '').trim() || '0', 8);
    const type = String.fromCharCode(h[156] ?? 0);
    const data = buf.subarray(pos + 512, pos + 512 + size);
    pos += 512 + Math.ceil(size / 512) * 512;
    if (type === 'x') {
      const m = /\d+ path=([^\n]*)\n/.exec(data.toString('utf8'));
      paxPath = m?.[1];
      continue;
    }
    out.set(paxPath ?? name, Buffer.from(data));
    paxPath = undefined;
  }
  return out;
}

export function sha512(b: Buffer): string {
  return createHash('sha512').update(b).digest('hex');
}

export function md5(b: Buffer): string {
  return createHash('md5').update(b).digest('hex');
}
