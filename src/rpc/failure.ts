/**
 * Failure replies (protocol ref §1.8): an exception becomes a JSON string
 * {"class","module","message","tb","args","kwargs"} that Python's
 * deserialize_remote_exception re-raises as `module.class(*args, **kwargs)`.
 */
import { NovaError } from '../common/errors.js';
import { RemoteError } from './errors.js';

export interface SerializedFailure {
  class: string;
  module: string;
  message: string;
  tb: string[];
  args: unknown[];
  kwargs: Record<string, unknown>;
}

/**
 * NovaError subclasses go out as their Nova class; anything else is an
 * unexpected agent error and goes out as builtins.Exception so every Python
 * caller can rebuild it (oslo allows builtins always).
 */
export function serializeFailure(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const tb = err instanceof Error && err.stack ? [`${err.stack}\n`] : [];
  let data: SerializedFailure;
  if (err instanceof NovaError) {
    data = { class: err.novaClass, module: err.novaModule, message, tb, args: [message], kwargs: err.kwargs };
  } else {
    data = { class: 'Exception', module: 'builtins', message, tb, args: [message], kwargs: {} };
  }
  return JSON.stringify(data);
}

/** Rebuilds a failure received in a reply as a RemoteError. */
export function deserializeFailure(failure: unknown): RemoteError {
  let data: Partial<SerializedFailure> = {};
  try {
    const parsed: unknown = typeof failure === 'string' ? JSON.parse(failure) : failure;
    if (parsed && typeof parsed === 'object') data = parsed;
  } catch {
    return new RemoteError('RemoteError', 'unknown', String(failure));
  }
  const kwargs = data.kwargs && typeof data.kwargs === 'object' ? data.kwargs : {};
  return new RemoteError(
    String(data.class ?? 'RemoteError'),
    String(data.module ?? 'unknown'),
    String(data.message ?? ''),
    kwargs,
    Array.isArray(data.tb) ? data.tb.map(String) : [],
  );
}
