/**
 * Loads nova.conf files the way oslo.config's ConfigOpts does:
 *
 * - `--config-file` files in order, then each `--config-dir`'s `*.conf`
 *   (names not starting with `.`, sorted); a later file wins over an earlier
 *   one, and within a file the last occurrence of a key wins;
 * - multistr options collect every value of every file, oldest first;
 * - section names match case-insensitively, except `[DEFAULT]`, which must
 *   be written exactly so (cfg.py `_normalize_group_name`);
 * - deprecated names/groups are looked up after the current name, file by
 *   file, so a newer file using an old name still wins;
 * - `$var`, `${var}` and `${group.var}` in values (and string defaults) are
 *   replaced by the referenced option's value (cfg.py `_substitute`); `$$`
 *   or `\$` is a literal `$`. A name without a group is looked up in the
 *   option's own group, then in [DEFAULT]. Options nova-docker does not
 *   declare are taken as raw strings from the files;
 * - unknown sections and options are ignored;
 * - only the winning value is converted and validated; every problem is
 *   collected into one ConfigError.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { redactText } from '../common/log.js';
import { ConfigError } from './errors.js';
import { IniParseError, parseIni } from './iniparser.js';
import { OPTIONS, groupOrder, type Config, type OptionSpec } from './options.js';
import { maskUrl, tryParseTransportUrl } from './transport.js';
import { coerce, showValue, substitutionText, type OptionValueAny } from './types.js';

export interface LoadOptions {
  /** `--config-file` paths, in command-line order. */
  readonly configFiles: readonly string[];
  /** `--config-dir` paths, read after the files. */
  readonly configDirs?: readonly string[];
  /** Told about each deprecated option name in use (oslo logs a warning). */
  readonly warn?: (message: string) => void;
}

interface RawValue {
  readonly value: string;
  readonly file: string;
  /** Section name as written in the file. */
  readonly section: string;
  readonly key: string;
  readonly line: number;
}

interface ParsedFile {
  readonly file: string;
  /** normalized section name → key → values in file order */
  readonly sections: Map<string, Map<string, RawValue[]>>;
}

type Lookup = { raw: string | string[]; origin: RawValue };
type Resolved = { ok: true; value: OptionValueAny } | { ok: false; cycle?: true };
type Substituted = { ok: true; text: string } | { ok: false; problem?: string };

export function normalizeGroupName(name: string): string {
  return name === 'DEFAULT' ? name : name.toLowerCase();
}

function expandPath(p: string): string {
  return resolve(p === '~' || p.startsWith('~/') ? join(homedir(), p.slice(1)) : p);
}

function errno(err: unknown): string | undefined {
  return err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

function readConfigFile(file: string, problems: string[]): ParsedFile | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = errno(err);
    if (code === 'ENOENT') problems.push(`${file}: config file not found`);
    else if (code === 'EACCES') problems.push(`${file}: permission denied reading config file`);
    else if (code === 'EISDIR') problems.push(`${file}: is a directory, not a config file (use --config-dir)`);
    else problems.push(`${file}: cannot read config file: ${err instanceof Error ? err.message : String(err)}`);
    return undefined;
  }
  let parsed;
  try {
    parsed = parseIni(text);
  } catch (err) {
    if (!(err instanceof IniParseError)) throw err;
    problems.push(`${file}: line ${err.lineno}: ${err.reason}: ${JSON.stringify(redactText(maskUrl(err.text)))}`);
    return undefined;
  }
  const sections = new Map<string, Map<string, RawValue[]>>();
  for (const section of parsed) {
    const norm = normalizeGroupName(section.name);
    let keys = sections.get(norm);
    if (keys === undefined) sections.set(norm, (keys = new Map<string, RawValue[]>()));
    for (const e of section.entries) {
      let values = keys.get(e.key);
      if (values === undefined) keys.set(e.key, (values = []));
      values.push({ value: e.value, file, section: section.name, key: e.key, line: e.line });
    }
  }
  return { file, sections };
}

function configDirFiles(dir: string, problems: string[]): string[] {
  try {
    return readdirSync(dir)
      .filter((name) => name.endsWith('.conf') && !name.startsWith('.'))
      .sort()
      .map((name) => join(dir, name));
  } catch (err) {
    const code = errno(err);
    if (code === 'ENOENT') problems.push(`${dir}: config directory not found`);
    else if (code === 'ENOTDIR') problems.push(`${dir}: is not a directory (use --config-file)`);
    else problems.push(`${dir}: cannot read config directory: ${err instanceof Error ? err.message : String(err)}`);
    return [];
  }
}

const SUBST = /\$(?:(\$)|([_a-z][._a-z0-9]*)|\{([_a-z][._a-z0-9]*)\}|)/gi;

class Resolver {
  readonly problems: string[] = [];
  readonly values = new Map<string, OptionValueAny>();
  readonly origins = new Map<string, RawValue>();
  private readonly specs = new Map<string, OptionSpec>();
  private readonly failed = new Set<string>();
  private readonly active = new Set<string>();
  private readonly warned = new Set<string>();

  constructor(
    table: readonly OptionSpec[],
    /** oldest first */
    private readonly files: readonly ParsedFile[],
    private readonly searched: readonly string[],
    private readonly warn: ((message: string) => void) | undefined,
  ) {
    for (const spec of table) this.specs.set(key(spec.group, spec.name), spec);
  }

  spec(group: string, name: string): OptionSpec | undefined {
    return this.specs.get(key(group, name));
  }

  problem(spec: OptionSpec, origin: RawValue | undefined, message: string): void {
    if (origin === undefined) {
      this.problems.push(`(default): [${spec.group}] ${spec.name}: ${message}`);
    } else {
      this.problems.push(`${origin.file}: [${origin.section}] ${origin.key}: ${message} (line ${origin.line})`);
    }
  }

  private rawValues(group: string, name: string): RawValue[] {
    const out: RawValue[] = [];
    for (const f of this.files) out.push(...(f.sections.get(normalizeGroupName(group))?.get(name) ?? []));
    return out;
  }

  private lookup(spec: OptionSpec): Lookup | undefined {
    const names: [string, string][] = [[spec.group, spec.name]];
    for (const d of spec.deprecatedNames ?? []) names.push([d.group ?? spec.group, d.name ?? spec.name]);
    let multi: RawValue[] = [];
    let origin: RawValue | undefined;
    for (const file of [...this.files].reverse()) {
      for (const [i, [group, name]] of names.entries()) {
        const values = file.sections.get(normalizeGroupName(group))?.get(name);
        const last = values?.[values.length - 1];
        if (values === undefined || last === undefined) continue;
        if (i > 0) this.deprecated(spec, last);
        if (spec.type !== 'multistr') return { raw: last.value, origin: last };
        multi = [...values, ...multi];
        origin ??= last;
      }
    }
    return origin === undefined ? undefined : { raw: multi.map((v) => v.value), origin };
  }

  private deprecated(spec: OptionSpec, used: RawValue): void {
    const id = `${used.file}\0${used.section}\0${used.key}`;
    if (this.warn === undefined || this.warned.has(id)) return;
    this.warned.add(id);
    this.warn(`${used.file}: [${used.section}] ${used.key} is deprecated; use [${spec.group}] ${spec.name}`);
  }

  resolve(spec: OptionSpec): Resolved {
    const k = key(spec.group, spec.name);
    if (this.values.has(k)) return { ok: true, value: this.values.get(k) };
    if (this.failed.has(k)) return { ok: false };
    if (this.active.has(k)) return { ok: false, cycle: true };
    this.active.add(k);
    try {
      const result = this.compute(spec);
      if (result.ok) this.values.set(k, result.value);
      else this.failed.add(k);
      return result;
    } finally {
      this.active.delete(k);
    }
  }

  private compute(spec: OptionSpec): Resolved {
    const found = this.lookup(spec);
    const origin = found?.origin;
    if (origin !== undefined) this.origins.set(key(spec.group, spec.name), origin);
    const show = (v: string): string => showValue(spec, v, maskUrl);

    let input: string | string[] | undefined;
    let typed: OptionValueAny;
    if (found !== undefined) {
      input = found.raw;
    } else if (typeof spec.default === 'function') {
      input = spec.default();
    } else if (typeof spec.default === 'string') {
      input = spec.default;
    } else if (spec.default !== undefined) {
      typed = typeof spec.default === 'object' ? [...spec.default] : spec.default;
    } else if (spec.type === 'bool') {
      typed = false;
    } else if (spec.type === 'list' || spec.type === 'multistr') {
      typed = [];
    }

    if (input !== undefined) {
      const texts: string[] = [];
      for (const text of typeof input === 'string' ? [input] : input) {
        const sub = this.substitute(text, spec.group, spec.secret === true);
        if (!sub.ok) {
          if (sub.problem !== undefined) this.problem(spec, origin, sub.problem);
          return { ok: false };
        }
        texts.push(sub.text);
      }
      const converted = coerce(spec, typeof input === 'string' ? (texts[0] ?? '') : texts, show);
      if (!converted.ok) {
        this.problem(spec, origin, converted.problem);
        return { ok: false };
      }
      typed = converted.value;
    }

    if (spec.required === true && (typed === undefined || typed === '')) {
      const where = this.searched.length > 0 ? this.searched.join(', ') : '(no config files given)';
      this.problems.push(
        `${where}: [${spec.group}] ${spec.name}: required option is ${typed === '' ? 'empty' : 'not set'}`,
      );
      return { ok: false };
    }
    return { ok: true, value: typed };
  }

  /** cfg.py `_substitute` with string.Template.safe_substitute semantics. */
  private substitute(text: string, group: string, secret: boolean, rawChain: string[] = []): Substituted {
    if (!text.includes('$')) return { ok: true, text };
    let failure: Substituted | undefined;
    const replacer = (
      match: string,
      escaped: string | undefined,
      named: string | undefined,
      braced: string | undefined,
    ): string => {
      if (failure !== undefined) return match;
      if (escaped !== undefined) return '$';
      const name = named ?? braced;
      if (name === undefined) return match; // a lone '$' stays as it is
      const ref = this.reference(name, group, secret, rawChain);
      if (ref.ok) return ref.text;
      failure = ref;
      return match;
    };
    const out = text.replaceAll('\\$', '$$$$').replace(SUBST, replacer);
    return failure ?? { ok: true, text: out };
  }

  private reference(name: string, group: string, secret: boolean, rawChain: string[]): Substituted {
    const dot = name.indexOf('.');
    const [g, o] = dot >= 0 ? [name.slice(0, dot), name.slice(dot + 1)] : [group, name];
    const target = this.spec(g, o) ?? this.spec('DEFAULT', name);
    if (target !== undefined) {
      const r = this.resolve(target);
      if (r.ok) return { ok: true, text: substitutionText(target, r.value) };
      if (r.cycle !== true) return { ok: false }; // the referenced option reports its own problem
      return {
        ok: false,
        problem: secret
          ? "contains a '$' reference that loops back to itself; write $$ for a literal $"
          : `$${name} refers back to this option (circular reference)`,
      };
    }
    // Not an option we declare: nova would know it; use the files' raw text.
    for (const [rg, ro] of [
      [g, o],
      ['DEFAULT', name],
    ] as const) {
      const raw = this.rawValues(rg, ro);
      const last = raw[raw.length - 1];
      if (last === undefined) continue;
      const id = key(rg, ro);
      if (rawChain.includes(id)) {
        return { ok: false, problem: secret ? "contains a circular '$' reference" : `$${name}: circular reference` };
      }
      return this.substitute(last.value, rg, secret, [...rawChain, id]);
    }
    return {
      ok: false,
      problem: secret
        ? "contains a '$' that is not an option reference; write $$ for a literal $"
        : `refers to $${name}, which is not a known option or set in the config files; write $$ for a literal $`,
    };
  }
}

function key(group: string, name: string): string {
  return `${group}\0${name}`;
}

function deepFreeze<T>(value: T): T {
  if (Array.isArray(value)) Object.freeze(value);
  else if (value !== null && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** Resolves any option table; `loadConfig` is this over OPTIONS, typed. */
export function loadConfigWith(
  table: readonly OptionSpec[],
  opts: LoadOptions,
): Record<string, Record<string, unknown>> {
  const fileProblems: string[] = [];
  const paths = opts.configFiles.map(expandPath);
  for (const dir of (opts.configDirs ?? []).map(expandPath)) paths.push(...configDirFiles(dir, fileProblems));
  const files: ParsedFile[] = [];
  for (const path of paths) {
    const parsed = readConfigFile(path, fileProblems);
    if (parsed !== undefined) files.push(parsed);
  }
  // Values from the other files would only produce follow-on noise.
  if (fileProblems.length > 0) throw new ConfigError(fileProblems);

  const r = new Resolver(table, files, paths, opts.warn);
  for (const spec of table) r.resolve(spec);

  // The transport URL must parse, and its query overrides [oslo_messaging_rabbit].
  const transportSpec = r.spec('DEFAULT', 'transport_url');
  const url = r.values.get(key('DEFAULT', 'transport_url'));
  if (transportSpec !== undefined && typeof url === 'string') {
    const origin = r.origins.get(key('DEFAULT', 'transport_url'));
    const ssl = r.values.get(key('oslo_messaging_rabbit', 'ssl'));
    const parsed = tryParseTransportUrl(url, { ssl: ssl === true });
    if (!parsed.ok) r.problem(transportSpec, origin, parsed.problem);
    else {
      for (const [name, value] of Object.entries(parsed.url.query)) {
        const spec = r.spec('oslo_messaging_rabbit', name);
        if (spec === undefined) continue;
        const converted = coerce(spec, value, (v) => JSON.stringify(v));
        if (converted.ok) r.values.set(key(spec.group, spec.name), converted.value);
        else r.problem(transportSpec, origin, `query parameter ${name}: ${converted.problem}`);
      }
    }
  }
  if (r.problems.length > 0) throw new ConfigError(r.problems);

  const config: Record<string, Record<string, unknown>> = {};
  for (const group of groupOrder(table)) config[group] = {};
  for (const spec of table) {
    const groupValues = config[spec.group];
    if (groupValues !== undefined) groupValues[spec.name] = r.values.get(key(spec.group, spec.name));
  }
  return deepFreeze(config);
}

/**
 * Reads and validates the configuration. Throws ConfigError listing every
 * problem (missing files, syntax, types, ranges, required options).
 */
export function loadConfig(opts: LoadOptions): Config {
  // Config is derived from OPTIONS' own type, and the resolver set exactly OPTIONS' groups and names
  return loadConfigWith(OPTIONS, opts) as Config;
}
