import assert from 'node:assert/strict';
import { IniParseError, parseIni } from '../../../src/config/iniparser.js';

/** [section, key, value] triples in file order. */
function triples(text: string): [string, string, string][] {
  return parseIni(text).flatMap((s) => s.entries.map((e): [string, string, string] => [s.name, e.key, e.value]));
}

function parseError(text: string): IniParseError {
  try {
    parseIni(text);
  } catch (err) {
    assert.ok(err instanceof IniParseError);
    return err;
  }
  assert.fail('expected a parse error');
}

describe('config/iniparser (oslo iniparser.py semantics)', () => {
  it('keeps # and ; inside values: comments only start at column 0', () => {
    assert.deepEqual(
      triples('[DEFAULT]\ntransport_url = rabbit://u:pass#word@h\nx = a ; b\n# a comment\n; another\n'),
      [
        ['DEFAULT', 'transport_url', 'rabbit://u:pass#word@h'],
        ['DEFAULT', 'x', 'a ; b'],
      ],
    );
  });

  it('accepts key = value and key: value, splitting at whichever comes first', () => {
    assert.deepEqual(triples('[s]\na = b: c\nd: e = f\nurl=http://h:1/\n'), [
      ['s', 'a', 'b: c'],
      ['s', 'd', 'e = f'],
      ['s', 'url', 'http://h:1/'],
    ]);
  });

  it('joins indented continuation lines with newlines; a blank line ends the value', () => {
    assert.deepEqual(triples('[s]\nv = one\n  two\n\tthree\n\nw = x\n'), [
      ['s', 'v', 'one\ntwo\nthree'],
      ['s', 'w', 'x'],
    ]);
    assert.deepEqual(triples('[s]\nempty =\n  [not a section]\n'), [['s', 'empty', '\n[not a section]']]);
  });

  it('keeps every occurrence of a repeated key, in order', () => {
    assert.deepEqual(triples('[s]\nk = 1\nk = 2\n[t]\nk = 3\n[s]\nk = 4\n'), [
      ['s', 'k', '1'],
      ['s', 'k', '2'],
      ['t', 'k', '3'],
      ['s', 'k', '4'],
    ]);
  });

  it('strips keys and values and one pair of matching surrounding quotes, as oslo does', () => {
    assert.deepEqual(triples('[s]\na  =   spaced out   \nb = "q"\nc = \'x"\nd = "a" and "b"\ne = ""\n'), [
      ['s', 'a', 'spaced out'],
      ['s', 'b', 'q'],
      ['s', 'c', '\'x"'],
      ['s', 'd', 'a" and "b'],
      ['s', 'e', ''],
    ]);
  });

  it('keeps section names exactly as written, DEFAULT included', () => {
    assert.deepEqual(
      parseIni('[DEFAULT]\n[Docker]\n[ spaced ]\n').map((s) => s.name),
      ['DEFAULT', 'Docker', ' spaced '],
    );
  });

  it('handles CRLF, a BOM and no trailing newline', () => {
    assert.deepEqual(triples('\uFEFF[DEFAULT]\r\na = 1\r\nb = 2'), [
      ['DEFAULT', 'a', '1'],
      ['DEFAULT', 'b', '2'],
    ]);
  });

  it('reports the line and reason of malformed input', () => {
    const cases: [string, string, number][] = [
      ['a = 1\n', 'Section must be started before assignment', 1],
      ['[s]\njust words\n', "No ':' or '=' found in assignment", 2],
      ['[s]\n= v\n', 'Key cannot be empty', 2],
      ['[s]\n\n  indented\n', 'Unexpected continuation line', 3],
      ['[s\n', 'Invalid section (must end with ])', 1],
      ['[]\n', 'Empty section name', 1],
    ];
    for (const [text, reason, line] of cases) {
      const err = parseError(text);
      assert.equal(err.reason, reason, text);
      assert.equal(err.lineno, line, text);
    }
  });
});
