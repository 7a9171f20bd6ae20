// What a write to a Node may change, as the real server's node registry
// strategy and validation decide it (pkg/registry/core/node/strategy.go,
// pkg/apis/core/validation): the fields in play only.
import * as net from 'node:net';

import { applyJsonPatch, applyMergePatch, applyStrategicMergePatch, isObject, type Json, type JsonObject, jsonEqual, NODE_LISTS, PatchError } from './patch';
import { conflict, fail, invalid, OPTIMISTIC_LOCK } from './status';
import { meta, nameOf } from './store';

export const PATCH_TYPES = ['application/json-patch+json', 'application/merge-patch+json', 'application/strategic-merge-patch+json'];

/** current with a PATCH body of the given Content-Type applied; the real server's 415, 400, 422 otherwise. */
export function applyNodePatch(current: JsonObject, contentType: string, body: string): JsonObject {
  const type = contentType.split(';')[0].trim();
  if (!PATCH_TYPES.includes(type)) {
    throw fail(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: ${PATCH_TYPES.join(', ')}`);
  }
  let patched: Json;
  try {
    if (type === 'application/json-patch+json') patched = applyJsonPatch(current, body);
    else if (type === 'application/merge-patch+json') patched = applyMergePatch(current, body);
    else patched = applyStrategicMergePatch(current, body, NODE_LISTS);
  } catch (err) {
    if (!(err instanceof PatchError)) throw err;
    if (err.code === 400) throw fail(400, 'BadRequest', err.message);
    if (err.code === 422) throw fail(422, 'Invalid', err.message, {});
    throw fail(500, 'InternalError', `Internal error occurred: ${err.message}`);
  }
  if (!isObject(patched)) throw invalid(nameOf(current), 'patch', `Invalid value: ${JSON.stringify(patched)}: the patched document is not an object`);
  return patched;
}

/**
 * The node to store when next (a patched or PUT object) is written over
 * current through the main resource or the status subresource, or null
 * when that changes nothing (nothing is stored, no resourceVersion spent).
 * Name and uid must match; a resourceVersion given must be the stored one;
 * the main resource keeps the stored status and the status subresource the
 * stored spec, metadata going through both (flannel writes its annotations
 * through nodes/status).
 */
export function prepareNodeWrite(current: JsonObject, next: JsonObject, subresource: '' | 'status'): JsonObject | null {
  const name = nameOf(current);
  const m = isObject(next.metadata) ? next.metadata : {};
  if (m.name !== undefined && m.name !== name) {
    throw fail(400, 'BadRequest', `the name of the object (${String(m.name)}) does not match the name on the URL (${name})`);
  }
  if (m.uid !== undefined && m.uid !== '' && m.uid !== meta(current).uid) {
    throw conflict(name, `Precondition failed: UID in precondition: ${String(m.uid)}, UID in object meta: ${String(meta(current).uid)}`);
  }
  if (m.resourceVersion !== undefined && m.resourceVersion !== '' && m.resourceVersion !== meta(current).resourceVersion) {
    throw conflict(name, OPTIMISTIC_LOCK);
  }
  const node: JsonObject = { ...next, apiVersion: 'v1', kind: 'Node' };
  if (subresource === 'status') node.spec = current.spec;
  else node.status = current.status;
  if (node.spec === undefined) delete node.spec;
  if (node.status === undefined) delete node.status;
  const { uid, creationTimestamp, resourceVersion } = meta(current);
  node.metadata = { ...m, name, uid, creationTimestamp, resourceVersion };
  if (isObject(node.spec)) node.spec = { ...node.spec };
  syncPodCidrs(node);
  validateNode(node, current);
  return jsonEqual(node, current) ? null : node;
}

const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function qualifiedNameProblem(key: string): string | null {
  const parts = key.split('/');
  if (parts.length > 2) return "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character, with an optional DNS subdomain prefix and '/'";
  const [prefix, name] = parts.length === 2 ? parts : ['', parts[0]];
  if (parts.length === 2 && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) return 'prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \'-\' or \'.\', and must start and end with an alphanumeric character';
  if (name.length === 0 || name.length > 63) return 'name part must be no more than 63 characters and not empty';
  if (!QUALIFIED_NAME.test(name)) return "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
  return null;
}

function validCidr(s: string): boolean {
  const m = /^(.+)\/(\d{1,3})$/.exec(s);
  if (!m) return false;
  const family = net.isIP(m[1]);
  return family !== 0 && Number(m[2]) <= (family === 4 ? 32 : 128);
}

/**
 * The checks the real server makes on the Node fields in play, after a patch
 * or update, against the stored node: types (it decodes into Go structs),
 * metadata keys, podCIDR(s) set at most once and well formed.
 */
function validateNode(node: JsonObject, old: JsonObject): void {
  const name = nameOf(old);
  const m = node.metadata;
  if (!isObject(m)) throw invalid(name, 'metadata', `Invalid value: ${JSON.stringify(m)}: must be an object`);
  for (const field of ['labels', 'annotations']) {
    const map = m[field];
    if (map === undefined) continue;
    if (!isObject(map)) throw invalid(name, `metadata.${field}`, `Invalid value: ${JSON.stringify(map)}: must be a map of strings`);
    for (const [k, v] of Object.entries(map)) {
      if (typeof v !== 'string') throw invalid(name, `metadata.${field}`, `Invalid value: ${JSON.stringify(v)}: the value of ${JSON.stringify(k)} must be a string`);
      const problem = qualifiedNameProblem(k);
      if (problem) throw invalid(name, `metadata.${field}`, `Invalid value: ${JSON.stringify(k)}: ${problem}`);
      if (field === 'labels' && v !== '' && (v.length > 63 || !QUALIFIED_NAME.test(v))) {
        throw invalid(name, `metadata.labels`, `Invalid value: ${JSON.stringify(v)}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`);
      }
    }
  }
  const spec = node.spec;
  if (spec !== undefined && !isObject(spec)) throw invalid(name, 'spec', `Invalid value: ${JSON.stringify(spec)}: must be an object`);
  const cidrs = (spec as JsonObject | undefined)?.podCIDRs;
  if (cidrs !== undefined) {
    if (!Array.isArray(cidrs) || cidrs.some((c) => typeof c !== 'string')) throw invalid(name, 'spec.podCIDRs', `Invalid value: ${JSON.stringify(cidrs)}: must be a list of strings`);
    if (cidrs.length > 2) throw invalid(name, 'spec.podCIDRs', 'Too many: may have at most 2 items', 'FieldValueTooMany');
    cidrs.forEach((c, i) => {
      if (!validCidr(c as string)) throw invalid(name, `spec.podCIDRs[${i}]`, `Invalid value: ${JSON.stringify(c)}: must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)`);
    });
  }
  const oldCidrs = ((old.spec as JsonObject | undefined)?.podCIDRs ?? []) as Json[];
  const newCidrs = (cidrs ?? []) as Json[];
  if (oldCidrs.length > 0 && (oldCidrs.length !== newCidrs.length || oldCidrs.some((c, i) => c !== newCidrs[i]))) {
    throw invalid(name, 'spec.podCIDRs', 'Forbidden: node updates may not change podCIDR except from "" to valid', 'FieldValueForbidden');
  }
  const status = node.status;
  if (status !== undefined && !isObject(status)) throw invalid(name, 'status', `Invalid value: ${JSON.stringify(status)}: must be an object`);
  for (const list of ['conditions', 'addresses']) {
    const items = (status as JsonObject | undefined)?.[list];
    if (items === undefined) continue;
    if (!Array.isArray(items) || items.some((c) => !isObject(c) || typeof c.type !== 'string')) {
      throw invalid(name, `status.${list}`, `Invalid value: ${JSON.stringify(items)}: must be a list of objects with a string "type"`);
    }
  }
}

/**
 * v1 carries the node's range twice (spec.podCIDR and spec.podCIDRs); the
 * server keeps them in step, the list winning when both are given.
 */
function syncPodCidrs(node: JsonObject): void {
  const spec = node.spec;
  if (!isObject(spec)) return;
  if (Array.isArray(spec.podCIDRs) && spec.podCIDRs.length > 0) spec.podCIDR = spec.podCIDRs[0];
  else if (typeof spec.podCIDR === 'string' && spec.podCIDR !== '') spec.podCIDRs = [spec.podCIDR];
}
