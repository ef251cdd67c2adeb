import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { PauseImage, isStaticElf, pauseRootfsTar } from '../../../src/virt/docker/pause-image.js';

describe('virt/docker/pause-image', () => {
  it('the rootfs tarball: directories, bin/busybox 0755 with the bytes, two zero blocks at the end', () => {
    const bin = Buffer.from('x'.repeat(700));
    const tar = pauseRootfsTar(bin);
    assert.equal(tar.length % 512, 0);
    const names: string[] = [];
    for (let off = 0; off + 512 <= tar.length;) {
      const h = tar.subarray(off, off + 512);
      if (h.every((b) => b === 0)) break;
      const name = h.toString('latin1', 0, 100).replace(/\0.*$/s, '');
      const size = parseInt(h.toString('latin1', 124, 136), 8);
      names.push(`${name} ${h.toString('latin1', 100, 107)} ${size}`);
      if (name === 'bin/busybox') assert.deepEqual(tar.subarray(off + 512, off + 512 + size), bin);
      off += 512 + Math.ceil(size / 512) * 512;
    }
    assert.ok(names.includes('bin/busybox 0000755 700'), names.join(', '));
    assert.ok(names.includes('etc/ 0000755 0'));
    assert.ok(tar.subarray(-1024).every((b) => b === 0));
  });

  it('static ELF check: a static binary passes, a dynamic one (PT_INTERP) and non-ELF do not', () => {
    assert.equal(isStaticElf(Buffer.from('#!/bin/sh\n')), false);
    assert.equal(isStaticElf(readFileSync(process.execPath)), false, 'node is dynamically linked');
    let busybox: Buffer | undefined;
    try {
      busybox = readFileSync('/bin/busybox');
    } catch {
      // busybox-static absent on this machine: only the negative cases
    }
    if (busybox) assert.equal(isStaticElf(busybox), true);
  });

  it('ensure: reuses an image of the same digest, imports otherwise; a missing binary says which package', async () => {
    const imports: string[] = [];
    const docker = {
      have: new Set<string>(),
      inspectImage(ref: string) {
        return Promise.resolve(this.have.has(ref) ? {} : undefined);
      },
      importImage(_tar: Buffer, repo: string, tag: string) {
        imports.push(`${repo}:${tag}`);
        this.have.add(`${repo}:${tag}`);
        return Promise.resolve('sha256:x');
      },
    };
    const p = new PauseImage(docker, '/bin/busybox');
    let ref: string;
    try {
      ref = await p.ensure();
    } catch {
      return; // no busybox-static here
    }
    assert.match(ref, /^nova-docker\/pause:[0-9a-f]{16}$/);
    assert.deepEqual(imports, [ref]);
    assert.equal(await new PauseImage(docker, '/bin/busybox').ensure(), ref);
    assert.equal(imports.length, 1, 'the same binary is not imported twice');
    await assert.rejects(new PauseImage(docker, '/nonexistent/busybox').ensure(), /busybox-static/);
  });
});
