/**
 * The import graph of src/ (README "Layout"): no import circle between
 * modules (type-only imports count: a circle of types is still a circle to
 * read and to move), and the folders depend in one direction. Read from the
 * TypeScript sources, so it needs no build tool beyond the test run.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { REPO_ROOT } from '../support/broker.js';

const SRC = join(REPO_ROOT, 'src');

/**
 * What each folder of src/ may import (README "Layout"): config → rpc →
 * objects → compute is the stack a request climbs, compute → virt → clients
 * the calls it makes; a folder never imports one above it. common is under
 * all of them; metrics implements the observer interfaces of the others and
 * nothing imports it but the top-level wiring (files directly in src/, which
 * may import anything and are imported by nothing in a folder).
 */
const MAY_IMPORT: Record<string, readonly string[]> = {
  common: [],
  config: ['common'],
  rpc: ['common', 'config'],
  objects: ['common', 'config', 'rpc'],
  clients: ['common'],
  virt: ['common', 'clients'],
  compute: ['common', 'config', 'rpc', 'objects', 'virt', 'clients'],
  metrics: ['common', 'config', 'rpc', 'objects', 'virt', 'clients', 'compute'],
};
const TOP = '(src)';

/** Static imports and re-exports (type-only included) and dynamic import()s of relative modules. */
const IMPORT =
  /(?:^|\n)[ \t]*(?:import|export)\b[^'";]*?\bfrom[ \t]*['"](\.[^'"]+)['"]|(?:^|\n)[ \t]*import[ \t]*['"](\.[^'"]+)['"]|\bimport\([ \t]*['"](\.[^'"]+)['"][ \t]*\)/g;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

/** Module (path under src/, .ts) → the src/ modules it imports. */
function importGraph(files: ReadonlyMap<string, string>): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const [file, text] of files) {
    const deps = new Set<string>();
    for (const m of text.matchAll(IMPORT)) {
      const spec = m[1] ?? m[2] ?? m[3];
      if (spec === undefined) continue;
      deps.add(normalize(join(dirname(file), spec)).replace(/\.js$/, '.ts'));
    }
    graph.set(file, [...deps]);
  }
  return graph;
}

/** Every import circle, each once, as the modules along it (found from its smallest module). */
function importCycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const cycles: string[][] = [];
  const nodes = [...graph.keys()].sort();
  for (const start of nodes) {
    // only circles whose smallest module is `start`: each circle is reported once
    const walk = (node: string, path: string[], onPath: Set<string>): void => {
      for (const next of graph.get(node) ?? []) {
        if (next === start) cycles.push([...path]);
        else if (next > start && graph.has(next) && !onPath.has(next)) {
          onPath.add(next);
          walk(next, [...path, next], onPath);
          onPath.delete(next);
        }
      }
    };
    walk(start, [start], new Set([start]));
  }
  return cycles;
}

function folderOf(module: string): string {
  const parts = module.split('/');
  return parts.length > 1 ? parts[0]! : TOP;
}

/** Imports that go against MAY_IMPORT, as "from → to". */
function layerViolations(graph: ReadonlyMap<string, readonly string[]>): string[] {
  const out: string[] = [];
  for (const [from, deps] of graph) {
    const fromFolder = folderOf(from);
    for (const to of deps) {
      const toFolder = folderOf(to);
      if (fromFolder === toFolder || fromFolder === TOP) continue;
      const allowed = MAY_IMPORT[fromFolder];
      if (allowed === undefined || !allowed.includes(toFolder)) out.push(`${from} → ${to}`);
    }
  }
  return out;
}

function srcGraph(): Map<string, string[]> {
  const files = new Map(sourceFiles(SRC).map((f) => [relative(SRC, f), readFileSync(f, 'utf8')] as const));
  return importGraph(files);
}

describe('architecture: the import graph of src/', () => {
  const graph = srcGraph();

  it('reads every module and its imports (multi-line, type-only, re-exports)', () => {
    assert.ok(graph.size > 50, `${graph.size} modules`);
    const manager = graph.get(join('compute', 'manager.ts')) ?? [];
    assert.ok(manager.includes(join('compute', 'collaborators.ts')), 'type-only, multi-line import seen');
    assert.ok(manager.includes(join('objects', 'conductor.ts')));
  });

  it('has no import circle', () => {
    assert.deepEqual(
      importCycles(graph).map((c) => c.join(' → ')),
      [],
    );
  });

  it('every folder imports only the folders below it (README "Layout")', () => {
    const folders = new Set([...graph.keys()].map(folderOf));
    folders.delete(TOP);
    assert.deepEqual(
      [...folders].filter((f) => !(f in MAY_IMPORT)),
      [],
      'a new folder needs its place in MAY_IMPORT',
    );
    assert.deepEqual(layerViolations(graph), []);
  });

  it('the checks fail on a circle and on an upward import', () => {
    const g = importGraph(
      new Map([
        ['compute/manager.ts', "import type {\n  X,\n} from './move.js';\nimport { Y } from '../virt/driver.js';"],
        ['compute/move.ts', "import type { Z } from './shelve.js';"],
        ['compute/shelve.ts', "export { Z } from './manager.js';"],
        ['virt/driver.ts', "const m = await import('../compute/manager.js');"],
      ]),
    );
    assert.deepEqual(
      importCycles(g).map((c) => c.join(' ')),
      ['compute/manager.ts compute/move.ts compute/shelve.ts', 'compute/manager.ts virt/driver.ts'],
    );
    assert.deepEqual(layerViolations(g), ['virt/driver.ts → compute/manager.ts']);
  });
});
