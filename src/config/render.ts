/**
 * Text renderings of the option table: the effective configuration (secrets
 * masked), the oslo-config-generator style sample file, and the markdown
 * reference in docs/configuration.md.
 */
import { OPTIONS, groupOrder, type Config, type OptionSpec, type OptType } from './options.js';
import { maskUrl } from './transport.js';

export const MASK = '***';
const NAMESPACE = 'nova-docker';
const WRAP_WIDTH = 70;

const TYPE_NAMES: Record<OptType, string> = {
  str: 'string value',
  enum: 'string value',
  int: 'integer value',
  float: 'floating point value',
  bool: 'boolean value',
  list: 'list value',
  multistr: 'multi valued',
  uri: 'uri value',
  port: 'port value',
};

/** Python's str() of a number of the option's type (floats keep their `.0`). */
function formatNumber(spec: OptionSpec, n: number): string {
  return spec.type === 'float' && Number.isInteger(n) ? n.toFixed(1) : String(n);
}

/** oslo quotes strings with leading/trailing blanks; we also quote what the parser would unquote. */
function quoteIfNeeded(s: string): string {
  const first = s[0];
  const quoted = s.length > 0 && (first === '"' || first === "'") && first === s[s.length - 1];
  return s.trim() !== s || quoted ? `"${s}"` : s;
}

/** The default as written in the sample: one string per line (several for multistr). */
function sampleDefaults(spec: OptionSpec): string[] {
  const d = spec.default;
  if (spec.sampleDefault !== undefined) return [spec.sampleDefault];
  if (d === undefined || typeof d === 'function') {
    if (spec.type === 'bool') return ['false'];
    return spec.type === 'list' || spec.type === 'multistr' ? [''] : ['<None>'];
  }
  if (typeof d === 'boolean') return [String(d)];
  if (typeof d === 'number') return [formatNumber(spec, d)];
  if (typeof d === 'string') return [quoteIfNeeded(d)];
  if (spec.type === 'multistr') return d.length === 0 ? [''] : d.map(quoteIfNeeded);
  return [d.map(quoteIfNeeded).join(',')];
}

/** textwrap.wrap(line, 70, initial_indent='# ', subsequent_indent='# ', break_long_words=False). */
function wrapHelp(text: string): string[] {
  const out: string[] = [];
  for (const paragraph of text.split('\n')) {
    const words = paragraph.split(/\s+/).filter((w) => w !== '');
    if (words.length === 0) {
      out.push('#');
      continue;
    }
    let line = '#';
    for (const word of words) {
      if (line !== '#' && line.length + 1 + word.length > WRAP_WIDTH) {
        out.push(line);
        line = '#';
      }
      line += ` ${word}`;
    }
    out.push(line);
  }
  return out;
}

function sampleOption(spec: OptionSpec, group: string): string[] {
  const lines = wrapHelp(`${spec.help} (${TYPE_NAMES[spec.type]})`);
  const min = spec.type === 'port' ? (spec.min ?? 0) : spec.min;
  const max = spec.type === 'port' ? (spec.max ?? 65535) : spec.max;
  if (min !== undefined) lines.push(`# Minimum value: ${formatNumber(spec, min)}`);
  if (max !== undefined) lines.push(`# Maximum value: ${formatNumber(spec, max)}`);
  if (spec.choices !== undefined) {
    lines.push('# Possible values:');
    for (const choice of spec.choices) lines.push(...wrapHelp(`${choice} - <No description provided>`));
  }
  for (const d of spec.deprecatedNames ?? []) {
    lines.push(`# Deprecated group/name - [${d.group ?? group}]/${d.name ?? spec.name}`);
  }
  if (spec.sampleDefault !== undefined) {
    lines.push(
      '#',
      '# This option has a sample default set, which means that',
      '# its actual default value may vary from the one documented',
      '# below.',
    );
  }
  for (const d of sampleDefaults(spec)) {
    lines.push(`#${spec.name} =${d === '' ? '' : ` ${d.replace(/\n/g, '\n#    ')}`}`);
  }
  return lines;
}

/** etc/nova-docker.conf.sample, in oslo-config-generator's layout. */
export function renderSample(table: readonly OptionSpec[] = OPTIONS): string {
  const parts: string[] = [];
  for (const [i, group] of groupOrder(table).entries()) {
    if (i > 0) parts.push('\n\n');
    parts.push(`[${group}]\n`, `\n#\n# From ${NAMESPACE}\n#\n`);
    for (const spec of table.filter((o) => o.group === group)) {
      parts.push('\n', sampleOption(spec, group).join('\n'), '\n');
    }
  }
  return parts.join('');
}

function mdEscape(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function mdDefault(spec: OptionSpec): string {
  if (spec.required === true) return '(required)';
  const d = sampleDefaults(spec).join(', ');
  if (d === '<None>') return '(unset)';
  return d === '' ? '(empty)' : `\`${d}\``;
}

/** The option reference section of docs/configuration.md. */
export function renderMarkdownReference(table: readonly OptionSpec[] = OPTIONS): string {
  const out: string[] = [];
  for (const group of groupOrder(table)) {
    out.push(`### [${group}]`, '', '| Option | Type | Default | Description |', '| --- | --- | --- | --- |');
    for (const spec of table.filter((o) => o.group === group)) {
      const notes: string[] = [spec.help];
      const min = spec.type === 'port' ? (spec.min ?? 0) : spec.min;
      const max = spec.type === 'port' ? (spec.max ?? 65535) : spec.max;
      if (min !== undefined || max !== undefined) {
        notes.push(
          `Range: ${min === undefined ? '…' : formatNumber(spec, min)} to ${max === undefined ? '…' : formatNumber(spec, max)}.`,
        );
      }
      if (spec.choices !== undefined) notes.push(`One of: ${spec.choices.map((c) => `\`${c}\``).join(', ')}.`);
      if (spec.secret === true) notes.push('Secret: masked in output.');
      const old = (spec.deprecatedNames ?? []).map((d) => `\`[${d.group ?? group}] ${d.name ?? spec.name}\``);
      if (old.length > 0) notes.push(`Deprecated names: ${old.join(', ')}.`);
      out.push(`| \`${spec.name}\` | ${spec.type} | ${mdEscape(mdDefault(spec))} | ${mdEscape(notes.join(' '))} |`);
    }
    out.push('');
  }
  return out.join('\n');
}

function renderValue(spec: OptionSpec, value: unknown): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'boolean') return [String(value)];
  if (typeof value === 'number') return [formatNumber(spec, value)];
  if (typeof value === 'string') {
    if (spec.secret === true && value !== '') return [spec.type === 'uri' ? maskUrl(value) : MASK];
    return [quoteIfNeeded(maskUrl(value))];
  }
  if (Array.isArray(value)) {
    const items = value.map((v) => (spec.secret === true && v !== '' ? MASK : quoteIfNeeded(maskUrl(String(v)))));
    return spec.type === 'multistr' ? items : [items.join(',')];
  }
  return [JSON.stringify(value)];
}

/** Any values object in the table's shape, as INI text with secrets masked. */
export function renderValues(table: readonly OptionSpec[], values: Readonly<Record<string, unknown>>): string {
  const out: string[] = [];
  for (const group of groupOrder(table)) {
    if (out.length > 0) out.push('');
    out.push(`[${group}]`);
    const groupValues = (values[group] ?? {}) as Readonly<Record<string, unknown>>;
    for (const spec of table.filter((o) => o.group === group)) {
      const rendered = renderValue(spec, groupValues[spec.name]);
      if (rendered === undefined) out.push(`#${spec.name} = <None>`);
      else if (rendered.length === 0) out.push(`#${spec.name} =`);
      else for (const v of rendered) out.push(`${spec.name} =${v === '' ? '' : ` ${v.replace(/\n/g, '\n    ')}`}`);
    }
  }
  return `${out.join('\n')}\n`;
}

/** The effective configuration as INI text: passwords (also inside transport_url) shown as `***`. */
export function renderConfig(config: Config): string {
  return renderValues(OPTIONS, config);
}
