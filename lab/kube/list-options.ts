// The query parameters of a list or watch (metav1.ListOptions) as the real
// server reads them: resourceVersion, continue tokens, field and label
// selectors, each refused with the server's own error when malformed.
import type { JsonObject } from './patch';
import { type ApiError, fail } from './status';
import { meta, nameOf } from './store';

// --- resourceVersion parameters -------------------------------------------------

/** A resourceVersion query parameter: "" and "0" mean "any"; anything but digits is the real server's error. */
export function parseRv(raw: string | null, forWatch: boolean): number {
  if (raw === null || raw === '' || raw === '0') return 0;
  if (/^[0-9]+$/.test(raw)) return Number(raw);
  const detail = `resourceVersion: Invalid value: ${JSON.stringify(raw)}: strconv.ParseUint: parsing ${JSON.stringify(raw)}: invalid syntax`;
  // The watch path interprets storage's InvalidError as a 422; list and get pass it on as a 500.
  if (forWatch) throw fail(422, 'Invalid', `nodes "" is invalid: ${detail}`, { kind: 'nodes', causes: [{ reason: 'FieldValueInvalid', message: detail, field: 'resourceVersion' }] });
  throw fail(500, '', detail);
}

export function tooLarge(rv: number, current: number): ApiError {
  return fail(504, 'Timeout', `Timeout: Too large resource version: ${rv}, current: ${current}`, {
    causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }],
    retryAfterSeconds: 1,
  });
}

// --- continue tokens (the real server's shape: base64url JSON) -------------------

export function encodeContinue(rv: number, lastName: string): string {
  return Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', rv, start: `${lastName}\u0000` })).toString('base64url');
}

export function decodeContinue(token: string): { rv: number; start: string } {
  try {
    const c = JSON.parse(Buffer.from(token, 'base64url').toString()) as { v?: string; rv?: number; start?: string };
    if (c.v !== 'meta.k8s.io/v1' || typeof c.rv !== 'number' || typeof c.start !== 'string') throw new Error('unrecognized token');
    return { rv: c.rv, start: c.start.replace(/\u0000$/, '') };
  } catch (err) {
    throw fail(400, 'BadRequest', `continue key is not valid: ${(err as Error).message}`);
  }
}

// --- selectors -------------------------------------------------------------------

export type Predicate = (node: JsonObject) => boolean;

export function fieldSelector(raw: string | null): Predicate {
  if (!raw) return () => true;
  const terms = raw.split(',').map((t) => {
    const m = /^([^!=]+)(==|=|!=)(.*)$/.exec(t);
    if (!m) throw fail(400, 'BadRequest', `invalid selector: '${raw}'; can't understand '${t}'`);
    const [, field, op, value] = m;
    if (field !== 'metadata.name') throw fail(400, 'BadRequest', `field label not supported: ${field}`);
    return (n: JsonObject) => (nameOf(n) === value) === (op !== '!=');
  });
  return (n) => terms.every((t) => t(n));
}

/** Equality-based label selectors: k=v, k==v, k!=v, k, !k. */
export function labelSelector(raw: string | null): Predicate {
  if (!raw) return () => true;
  const terms = raw.split(',').map((t) => {
    const m = /^(!?)([A-Za-z0-9._/-]+)(?:(==|=|!=)(.*))?$/.exec(t.trim());
    if (!m) throw fail(400, 'BadRequest', `unable to parse requirement: ${t}`);
    const [, not, key, op, value] = m;
    return (n: JsonObject) => {
      const labels = (meta(n).labels ?? {}) as JsonObject;
      if (!op) return (key in labels) !== (not === '!');
      return op === '!=' ? labels[key] !== value : labels[key] === value;
    };
  });
  return (n) => terms.every((t) => t(n));
}
