/**
 * The error taxonomy every layer builds on. An error carries what an operator
 * needs (instance, image, service, HTTP status, request id) as fields, and the
 * underlying error as `cause`, instead of pasting them into the message.
 */

export interface ErrorFields {
  instance_uuid?: string;
  image_id?: string;
  service?: string;
  status?: number;
  request_id?: string;
}

export class AgentError extends Error {
  readonly fields: ErrorFields;

  constructor(message: string, options: { cause?: unknown; fields?: ErrorFields } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.fields = options.fields ?? {};
  }
}

/**
 * An error that crosses the wire as a Nova exception: `novaClass`/`novaModule`
 * name the Python class the caller re-raises, `kwargs` fit its message template.
 */
export class NovaError extends AgentError {
  constructor(
    readonly novaClass: string,
    message: string,
    readonly kwargs: Record<string, unknown> = {},
    options: { cause?: unknown; fields?: ErrorFields; novaModule?: string } = {},
  ) {
    super(message, options);
    this.novaModule = options.novaModule ?? 'nova.exception';
  }
  readonly novaModule: string;
}

/** Walks `cause` links, so wrapped errors keep their classification. */
export function findCause<T extends Error>(err: unknown, klass: abstract new (...args: never[]) => T): T | undefined {
  let cur: unknown = err;
  for (let depth = 0; cur instanceof Error && depth < 16; depth++) {
    if (cur instanceof klass) return cur;
    cur = cur.cause;
  }
  return undefined;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
