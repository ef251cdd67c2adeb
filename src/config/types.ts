/**
 * String → typed value, with oslo_config/types.py semantics:
 * - bool: true/false, yes/no, on/off, 1/0, case-insensitive, nothing else;
 * - int: Python int() syntax (sign, `_` digit separators, surrounding blanks);
 * - float: Python float() syntax, finite values only;
 * - int/float: an empty value means "unset" (oslo returns None) — allowed for
 *   options without a default, an error for the others;
 * - list: comma separated, items stripped, trailing commas dropped;
 * - min/max/choices checked after conversion; port is an int in 0..65535.
 */
import type { OptionSpec } from './options.js';

export type OptionValueAny = string | number | boolean | readonly string[] | undefined;

export type Coerced = { ok: true; value: OptionValueAny } | { ok: false; problem: string };

const TRUE_VALUES = ['true', '1', 'on', 'yes'];
const FALSE_VALUES = ['false', '0', 'off', 'no'];
const DIGITS = String.raw`\d+(?:_\d+)*`;
const INT_RE = new RegExp(`^[+-]?${DIGITS}$`);
const FLOAT_RE = new RegExp(`^[+-]?(?:${DIGITS}(?:\\.(?:${DIGITS})?)?|\\.${DIGITS})(?:[eE][+-]?${DIGITS})?$`);
const URI_RE = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]+/;

/** How a value is quoted in a problem message: secrets never appear. */
export function showValue(spec: OptionSpec, value: string, mask: (url: string) => string): string {
  if (!spec.secret) return JSON.stringify(value);
  return spec.type === 'uri' ? JSON.stringify(mask(value)) : '"***"';
}

function fail(problem: string): Coerced {
  return { ok: false, problem };
}

function checkRange(spec: OptionSpec, n: number): Coerced {
  const min = spec.type === 'port' ? Math.max(spec.min ?? 0, 0) : spec.min;
  const max = spec.type === 'port' ? Math.min(spec.max ?? 65535, 65535) : spec.max;
  if (min !== undefined && n < min) return fail(`${n} is less than the minimum ${min}`);
  if (max !== undefined && n > max) return fail(`${n} is greater than the maximum ${max}`);
  return { ok: true, value: n };
}

/** Python's `list` parsing for List(String()). */
export function splitList(value: string): string[] {
  const s = value.trim().replace(/,+$/, '');
  return s === '' ? [] : s.split(',').map((item) => item.trim());
}

/**
 * Converts one raw value (all raw values, for multistr) to the option's
 * type. `show` renders the raw value for messages (masked for secrets).
 */
export function coerce(spec: OptionSpec, raw: string | readonly string[], show: (v: string) => string): Coerced {
  if (typeof raw !== 'string') {
    return spec.type === 'multistr' ? { ok: true, value: [...raw] } : coerce(spec, raw[raw.length - 1] ?? '', show);
  }
  switch (spec.type) {
    case 'bool': {
      const s = raw.toLowerCase();
      if (TRUE_VALUES.includes(s)) return { ok: true, value: true };
      if (FALSE_VALUES.includes(s)) return { ok: true, value: false };
      return fail(`${show(raw)} is not a boolean (use true/false, yes/no, on/off or 1/0)`);
    }
    case 'int':
    case 'port': {
      const s = raw.trim();
      const what = spec.type === 'port' ? 'a port number' : 'an integer';
      if (s === '')
        return spec.default === undefined ? { ok: true, value: undefined } : fail(`empty value is not ${what}`);
      if (!INT_RE.test(s)) return fail(`${show(raw)} is not ${what}`);
      const n = Number(s.replace(/_/g, ''));
      if (!Number.isSafeInteger(n)) return fail(`${show(raw)} is too large`);
      return checkRange(spec, n);
    }
    case 'float': {
      const s = raw.trim();
      if (s === '')
        return spec.default === undefined ? { ok: true, value: undefined } : fail('empty value is not a number');
      if (!FLOAT_RE.test(s)) return fail(`${show(raw)} is not a number`);
      const n = Number(s.replace(/_/g, ''));
      if (!Number.isFinite(n)) return fail(`${show(raw)} is not a finite number`);
      return checkRange(spec, n);
    }
    case 'list':
      return { ok: true, value: splitList(raw) };
    case 'multistr':
      return { ok: true, value: [raw] };
    case 'uri':
      if (!URI_RE.test(raw)) return fail(`${show(raw)} is not a URL (scheme://host...)`);
      return { ok: true, value: raw };
    case 'str':
    case 'enum':
      if (spec.choices !== undefined && !spec.choices.includes(raw)) {
        const hint = spec.choicesHint === undefined ? '' : ` (${spec.choicesHint})`;
        return fail(`${show(raw)} is not one of: ${spec.choices.join(', ')}${hint}`);
      }
      return { ok: true, value: raw };
  }
}

/** oslo's str() of a converted value, for `$var` substitution. */
export function substitutionText(spec: OptionSpec, value: OptionValueAny): string {
  if (value === undefined) return '';
  if (typeof value === 'boolean') return value ? 'True' : 'False';
  if (typeof value === 'number')
    return spec.type === 'float' && Number.isInteger(value) ? value.toFixed(1) : String(value);
  if (typeof value === 'string') return value;
  return `[${value.map((v) => `'${v}'`).join(', ')}]`;
}
