// The three patch types the Kubernetes API server takes on PATCH, applied to
// plain JSON the way it applies them (k8s.io/apiserver handlers/patch.go):
//   application/json-patch+json        RFC 6902; a malformed patch is 400, an
//                                      operation that does not apply is 422
//   application/merge-patch+json       RFC 7386; a body that is not JSON is 400
//   application/strategic-merge-patch+json
//                                      RFC 7386 plus per-field list strategies
//                                      taken from the Go types' patchStrategy /
//                                      patchMergeKey tags; here only the Node
//                                      and Pod fields a client patches in play
// Pure functions over parsed JSON, so the unit tests need no server. Errors
// carry the HTTP code the real server answers with.

export type Json = null | boolean | number | string | Json[] | JsonObject;
export interface JsonObject {
  [key: string]: Json;
}

export class PatchError extends Error {
  constructor(
    readonly code: 400 | 422 | 500,
    message: string,
  ) {
    super(message);
  }
}

export const isObject = (v: Json | undefined): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

function parse(text: string, what: string): Json {
  try {
    return JSON.parse(text) as Json;
  } catch (err) {
    throw new PatchError(400, `${what}: ${(err as Error).message}`);
  }
}

const clone = <T extends Json>(v: T): T => structuredClone(v);

// --- RFC 6902 ----------------------------------------------------------------

interface Op {
  op: string;
  path: string;
  from?: string;
  value?: Json;
}

/** RFC 6901 pointer to its unescaped tokens ("" is the whole document). */
function pointer(p: string): string[] {
  if (p === '') return [];
  if (!p.startsWith('/')) throw new PatchError(422, `JSON pointer ${JSON.stringify(p)} does not start with "/"`);
  return p
    .slice(1)
    .split('/')
    .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function arrayIndex(arr: Json[], token: string, forAdd: boolean, path: string): number {
  if (forAdd && token === '-') return arr.length;
  if (!/^(0|[1-9][0-9]*)$/.test(token)) throw new PatchError(422, `invalid array index ${JSON.stringify(token)} in ${path}`);
  const i = Number(token);
  if (i > arr.length || (!forAdd && i === arr.length)) throw new PatchError(422, `array index ${i} out of bounds in ${path}`);
  return i;
}

/** The container holding the last token of path, and that token. */
function parentOf(doc: Json, path: string, opName: string): { parent: JsonObject | Json[]; key: string } {
  const tokens = pointer(path);
  if (tokens.length === 0) throw new PatchError(422, `${opName} operation on the document root is not supported`);
  let cur: Json = doc;
  for (const t of tokens.slice(0, -1)) {
    if (Array.isArray(cur)) cur = cur[arrayIndex(cur, t, false, path)];
    else if (isObject(cur) && t in cur) cur = cur[t];
    else throw new PatchError(422, `${opName} operation does not apply: doc is missing path: ${JSON.stringify(path)}`);
  }
  if (!Array.isArray(cur) && !isObject(cur)) throw new PatchError(422, `${opName} operation does not apply: ${JSON.stringify(path)} is not inside an object or array`);
  return { parent: cur, key: tokens[tokens.length - 1] };
}

function getAt(doc: Json, path: string, opName: string): Json {
  const { parent, key } = parentOf(doc, path, opName);
  if (Array.isArray(parent)) return parent[arrayIndex(parent, key, false, path)];
  if (!(key in parent)) throw new PatchError(422, `${opName} operation does not apply: doc is missing key: ${path}`);
  return parent[key];
}

function addAt(doc: Json, path: string, value: Json, opName: string): void {
  const { parent, key } = parentOf(doc, path, opName);
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, key, true, path), 0, value);
  else parent[key] = value;
}

function removeAt(doc: Json, path: string, opName: string): Json {
  const { parent, key } = parentOf(doc, path, opName);
  if (Array.isArray(parent)) return parent.splice(arrayIndex(parent, key, false, path), 1)[0];
  if (!(key in parent)) throw new PatchError(422, `${opName} operation does not apply: doc is missing key: ${path}`);
  const old = parent[key];
  delete parent[key];
  return old;
}

export function jsonEqual(a: Json, b: Json): boolean {
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => jsonEqual(x, b[i]));
  if (isObject(a)) {
    if (!isObject(b)) return false;
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => k in b && jsonEqual(a[k], b[k]));
  }
  return a === b;
}

export function applyJsonPatch(doc: Json, patchText: string): Json {
  const ops = parse(patchText, 'error decoding JSON patch');
  if (!Array.isArray(ops)) throw new PatchError(400, `json: cannot unmarshal ${typeof ops === 'object' ? 'object' : typeof ops} into Go value of type jsonpatch.Patch`);
  const out = clone(doc);
  for (const raw of ops) {
    if (!isObject(raw) || typeof raw.op !== 'string' || typeof raw.path !== 'string') {
      throw new PatchError(422, `JSON patch operation ${JSON.stringify(raw)} lacks a string "op" or "path"`);
    }
    const op = raw as unknown as Op;
    const needsValue = op.op === 'add' || op.op === 'replace' || op.op === 'test';
    if (needsValue && !('value' in raw)) throw new PatchError(422, `${op.op} operation at ${op.path} has no value`);
    switch (op.op) {
      case 'add':
        addAt(out, op.path, clone(op.value as Json), 'add');
        break;
      case 'remove':
        removeAt(out, op.path, 'remove');
        break;
      case 'replace':
        removeAt(out, op.path, 'replace');
        addAt(out, op.path, clone(op.value as Json), 'replace');
        break;
      case 'move':
      case 'copy': {
        if (typeof op.from !== 'string') throw new PatchError(422, `${op.op} operation at ${op.path} has no "from"`);
        const v = op.op === 'move' ? removeAt(out, op.from, 'move') : clone(getAt(out, op.from, 'copy'));
        addAt(out, op.path, v, op.op);
        break;
      }
      case 'test':
        if (!jsonEqual(getAt(out, op.path, 'test'), op.value as Json)) throw new PatchError(422, `testing value ${op.path} failed: test failed`);
        break;
      default:
        throw new PatchError(422, `Unexpected kind: ${op.op}`);
    }
  }
  return out;
}

// --- RFC 7386 ----------------------------------------------------------------

function mergeValue(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch)) return clone(patch);
  const out: JsonObject = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergeValue(out[k], v);
  }
  return out;
}

export function applyMergePatch(doc: Json, patchText: string): Json {
  let patch: Json;
  try {
    patch = JSON.parse(patchText) as Json;
  } catch {
    throw new PatchError(400, 'Invalid JSON Patch'); // the real server's text for a merge patch that is not JSON
  }
  return mergeValue(doc, patch);
}

// --- strategic merge -----------------------------------------------------------

/**
 * How a list field merges, by its dotted path from the object root (list
 * elements add no segment): by a key inside each element, or as a set of
 * primitives. A list not named here is replaced whole, as in RFC 7386.
 */
export type ListStrategies = Record<string, { mergeKey: string } | { set: true }>;

/** The Go tags of the Node fields in play (k8s.io/api/core/v1 types.go). */
export const NODE_LISTS: ListStrategies = {
  'metadata.finalizers': { set: true },
  'metadata.ownerReferences': { mergeKey: 'uid' },
  'spec.podCIDRs': { set: true },
  'status.conditions': { mergeKey: 'type' },
  'status.addresses': { mergeKey: 'type' },
  'status.images': { set: true },
};

const DIRECTIVE = '$patch';
const RETAIN_KEYS = '$retainKeys';
const ORDER_PREFIX = '$setElementOrder/';
const DELETE_PRIMITIVE_PREFIX = '$deleteFromPrimitiveList/';

function strategicMap(orig: JsonObject, patch: JsonObject, path: string, lists: ListStrategies): JsonObject {
  const directive = patch[DIRECTIVE];
  if (directive === 'replace') return withoutDirectives(patch);
  if (directive !== undefined) throw new PatchError(400, `Unknown patch type: ${JSON.stringify(directive)} in map at ${path || '<root>'}`);
  const out: JsonObject = { ...orig };
  for (const [k, v] of Object.entries(patch)) {
    if (k === RETAIN_KEYS || k.startsWith(ORDER_PREFIX)) continue; // ordering and retention hints: order is not kept here
    if (k.startsWith(DELETE_PRIMITIVE_PREFIX)) {
      const field = k.slice(DELETE_PRIMITIVE_PREFIX.length);
      if (!Array.isArray(v)) throw new PatchError(400, `${k} must be a list`);
      const cur = out[field];
      if (Array.isArray(cur)) out[field] = cur.filter((x) => !v.some((d) => jsonEqual(d, x)));
      continue;
    }
    const p = path ? `${path}.${k}` : k;
    if (v === null) delete out[k];
    else if (isObject(v)) {
      if (v[DIRECTIVE] === 'delete') delete out[k];
      else out[k] = strategicMap(isObject(out[k]) ? (out[k] as JsonObject) : {}, v, p, lists);
    } else if (Array.isArray(v)) out[k] = strategicList(out[k], v, p, lists);
    else out[k] = v;
  }
  const retain = patch[RETAIN_KEYS];
  if (Array.isArray(retain)) for (const k of Object.keys(out)) if (!retain.includes(k)) delete out[k];
  return out;
}

function withoutDirectives(v: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const [k, x] of Object.entries(v)) if (!k.startsWith('$')) out[k] = x;
  return out;
}

function strategicList(orig: Json | undefined, patch: Json[], path: string, lists: ListStrategies): Json[] {
  const how = lists[path];
  if (!how) return clone(patch);
  const base = Array.isArray(orig) ? orig : [];
  if ('set' in how) {
    const out = [...base];
    for (const x of patch) if (!out.some((y) => jsonEqual(x, y))) out.push(clone(x));
    return out;
  }
  const key = how.mergeKey;
  if (patch.some((e) => isObject(e) && e[DIRECTIVE] === 'replace')) {
    return patch.filter((e) => !(isObject(e) && e[DIRECTIVE] === 'replace')).map((e) => (isObject(e) ? withoutDirectives(e) : e));
  }
  const out = [...base];
  for (const el of patch) {
    if (!isObject(el)) throw new PatchError(400, `${path}: element ${JSON.stringify(el)} of a list merged by "${key}" is not an object`);
    if (!(key in el)) throw new PatchError(500, `map: ${JSON.stringify(el)} does not contain declared merge key: ${key}`);
    const at = out.findIndex((o) => isObject(o) && jsonEqual(o[key], el[key]));
    if (el[DIRECTIVE] === 'delete') {
      if (at >= 0) out.splice(at, 1);
    } else if (at >= 0) out[at] = strategicMap(out[at] as JsonObject, el, path, lists);
    else out.push(strategicMap({}, el, path, lists));
  }
  return out;
}

export function applyStrategicMergePatch(doc: JsonObject, patchText: string, lists: ListStrategies): JsonObject {
  const patch = parse(patchText, 'error decoding strategic merge patch');
  if (!isObject(patch)) throw new PatchError(400, `json: cannot unmarshal ${Array.isArray(patch) ? 'array' : typeof patch} into Go value of type map[string]interface {}`);
  return strategicMap(doc, patch, '', lists);
}
