/** oslo.config's command-line options for finding config files. */
import { ConfigError } from './errors.js';

export interface ConfigArgs {
  /** `--config-file PATH` (repeatable; later files win). */
  readonly configFiles: string[];
  /** `--config-dir DIR` (repeatable; its `*.conf`, sorted, read after the files). */
  readonly configDirs: string[];
  /** Every other argument, in order. */
  readonly rest: string[];
}

/**
 * Splits `--config-file F`, `--config-file=F`, `--config-dir D` and
 * `--config-dir=D` out of argv. A flag without a value is a ConfigError.
 */
export function parseArgs(argv: readonly string[]): ConfigArgs {
  const out: ConfigArgs = { configFiles: [], configDirs: [], rest: [] };
  const problems: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const m = /^--(config-file|config-dir)(?:=(.*))?$/s.exec(arg);
    if (m === null) {
      out.rest.push(arg);
      continue;
    }
    let value = m[2];
    if (value === undefined) {
      const next = argv[i + 1];
      if (next !== undefined && !next.startsWith('--')) {
        value = next;
        i++;
      }
    }
    if (value === undefined || value === '') {
      problems.push(`--${m[1]} needs a path`);
      continue;
    }
    (m[1] === 'config-file' ? out.configFiles : out.configDirs).push(value);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return out;
}
