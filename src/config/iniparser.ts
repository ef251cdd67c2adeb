/**
 * An INI parser that reads files the way oslo.config does
 * (oslo_config/iniparser.py `BaseParser` + cfg.py `ConfigParser`):
 *
 * - `#` and `;` start a comment only at the very beginning of a line, so
 *   `transport_url = rabbit://u:pass#word@h` keeps `#word@h`;
 * - `key = value` and `key: value` (whichever separator comes first);
 *   key and value are stripped; ONE pair of matching surrounding quotes
 *   (`"..."` or `'...'`) is removed from the first line of a value;
 * - a line starting with a space or tab continues the previous value (joined
 *   with `\n`); a blank line or a line at column 0 ends it;
 * - a key may repeat: every occurrence is kept, in order;
 * - section names are kept as written (`[ docker ]` is the section
 *   " docker "); an assignment before any section header is an error.
 *
 * Section-name normalisation and which of several values wins are the
 * loader's business (see loader.ts), as they are cfg.py's, not iniparser.py's.
 */

export interface IniEntry {
  readonly key: string;
  readonly value: string;
  /** 1-based line of the `key = value` line. */
  readonly line: number;
}

export interface IniSection {
  /** The name between the brackets, exactly as written. */
  readonly name: string;
  readonly line: number;
  readonly entries: IniEntry[];
}

export class IniParseError extends Error {
  constructor(
    readonly reason: string,
    readonly lineno: number,
    readonly text: string,
  ) {
    super(`line ${lineno}: ${reason}: ${JSON.stringify(text)}`);
    this.name = 'IniParseError';
  }
}

/** Python's str.rstrip()/lstrip() whitespace, which is also JS's. */
const rstrip = (s: string): string => s.trimEnd();

function splitKeyValue(line: string, lineno: number): { key: string; value: string } {
  const colon = line.indexOf(':');
  const equal = line.indexOf('=');
  if (colon < 0 && equal < 0) throw new IniParseError("No ':' or '=' found in assignment", lineno, line);
  const at = colon < 0 || (equal >= 0 && equal < colon) ? equal : colon;
  const key = line.slice(0, at).trim();
  let value = line.slice(at + 1).trim();
  // oslo: `if value and value[0] == value[-1] and value.startswith(("\"", "'"))`
  if (value.length > 0 && (value[0] === '"' || value[0] === "'") && value[0] === value[value.length - 1]) {
    value = value.slice(1, -1);
  }
  return { key, value };
}

/**
 * Parses one file's text into its sections, in file order. Throws
 * IniParseError at the first malformed line, as oslo does.
 */
export function parseIni(text: string): IniSection[] {
  const sections: IniSection[] = [];
  let section: IniSection | undefined;
  let pending: { key: string; lines: string[]; line: number } | undefined;

  const flush = (): void => {
    if (pending === undefined) return;
    if (section === undefined) {
      throw new IniParseError('Section must be started before assignment', pending.line, pending.key);
    }
    section.entries.push({ key: pending.key, value: pending.lines.join('\n'), line: pending.line });
    pending = undefined;
  };

  // Python's text mode reads \r\n and \r as line ends; a UTF-8 BOM is dropped.
  const lines = text.replace(/^\uFEFF/, '').split(/\r\n|\r|\n/);
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();

  for (const [index, raw] of lines.entries()) {
    const lineno = index + 1;
    const line = rstrip(raw);
    if (line === '') {
      flush(); // a blank line ends a multi-line value
      continue;
    }
    if (line.startsWith(' ') || line.startsWith('\t')) {
      if (pending === undefined) throw new IniParseError('Unexpected continuation line', lineno, line);
      pending.lines.push(line.trimStart());
      continue;
    }
    flush();
    if (line.startsWith('[')) {
      if (!line.endsWith(']')) throw new IniParseError('Invalid section (must end with ])', lineno, line);
      if (line.length <= 2) throw new IniParseError('Empty section name', lineno, line);
      section = { name: line.slice(1, -1), line: lineno, entries: [] };
      sections.push(section);
    } else if (line.startsWith('#') || line.startsWith(';')) {
      // comment
    } else {
      const { key, value } = splitKeyValue(line, lineno);
      if (key === '') throw new IniParseError('Key cannot be empty', lineno, line);
      pending = { key, lines: [value], line: lineno };
    }
  }
  flush();
  return sections;
}
