/**
 * oslo.messaging's 2.0 envelope (protocol ref §1.5): the real message is a
 * JSON string inside {"oslo.version": "2.0", "oslo.message": "..."}.
 */
import { MalformedMessageError, UnsupportedEnvelopeVersionError } from './errors.js';

export const ENVELOPE_VERSION = '2.0';

export type OsloMessage = Record<string, unknown>;

export function encodeEnvelope(message: OsloMessage): Buffer {
  return Buffer.from(JSON.stringify({ 'oslo.version': ENVELOPE_VERSION, 'oslo.message': JSON.stringify(message) }));
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Same major, minor not newer than ours: only "2.0" in practice (om/_utils.py). */
function envelopeCompatible(version: string): boolean {
  const [major, minor] = version.split('.');
  return major === '2' && Number(minor ?? '0') <= 0;
}

/**
 * Decodes a message body. A dict without both envelope keys is an old 1.0
 * un-enveloped message, accepted as oslo does.
 */
export function decodeEnvelope(body: Buffer): OsloMessage {
  let outer: unknown;
  try {
    outer = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new MalformedMessageError(`message body is not JSON (${body.length} bytes)`, { cause: err });
  }
  if (!isObject(outer)) throw new MalformedMessageError('message body is not a JSON object');
  if (!('oslo.version' in outer) || !('oslo.message' in outer)) return outer;
  const version = outer['oslo.version'];
  if (typeof version !== 'string' || !envelopeCompatible(version)) {
    throw new UnsupportedEnvelopeVersionError(String(version));
  }
  const inner = outer['oslo.message'];
  if (typeof inner !== 'string') throw new MalformedMessageError('oslo.message is not a string');
  let message: unknown;
  try {
    message = JSON.parse(inner);
  } catch (err) {
    throw new MalformedMessageError('oslo.message is not JSON', { cause: err });
  }
  if (!isObject(message)) throw new MalformedMessageError('oslo.message is not a JSON object');
  return message;
}
