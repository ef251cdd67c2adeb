import { AgentError } from '../common/errors.js';

/**
 * Everything wrong with a configuration, at once. Each problem names the file,
 * section and option it is about; secret values never appear in it.
 */
export class ConfigError extends AgentError {
  readonly problems: readonly string[];

  constructor(problems: readonly string[], options: { cause?: unknown } = {}) {
    const list = problems.length > 0 ? problems : ['invalid configuration'];
    super(
      list.length === 1 ? (list[0] ?? '') : `${list.length} configuration problems:\n  ${list.join('\n  ')}`,
      options,
    );
    this.problems = Object.freeze([...list]);
  }
}
