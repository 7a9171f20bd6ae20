// A lab Kubernetes API server: the part of the real wire protocol that
// weft's kube subnet manager, @kubernetes/client-node and kubectl use, over
// HTTPS with bearer tokens and RBAC-shaped rules, answering errors with the
// real server's Status objects and texts. No kube-apiserver can be installed
// here, and a mock inside the test process would prove nothing about the
// protocol; this is a process of its own that kubectl is run against.
//
//   node dist/lab/kube/apiserver.js --dir D --listen IP:PORT [--bookmark-ms N]
//
// D holds everything, so a restart on the same D is the same cluster:
//   pki/server.crt, pki/server.key   made by pki.ts (the listen IP in subjectAltName)
//   users.json                       bearer tokens -> user, groups, rules (rbac.ts)
//   state.json                       nodes, pods and the resourceVersion counter (store.ts)
//   requests.jsonl                   one line per request served: who, verb, resource, code
//   admin.sock                       HTTP over a unix socket for the test that runs it
//                                    (apiserver-process.ts): found by path, so it is
//                                    reachable from any network namespace
//
// Served: /version, /api, /api/v1, /apis (legacy discovery: a plain JSON
// answer makes clients skip aggregated discovery), /healthz, /livez,
// /readyz; nodes list/get/watch/patch/update, nodes/status get/patch/update,
// namespaced pods get. Anything else is the real server's 404 or 405.
// Anonymous requests are refused (401), as with --anonymous-auth=false.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';

import { applyJsonPatch, applyMergePatch, applyStrategicMergePatch, isObject, type Json, type JsonObject, NODE_LISTS, PatchError } from './patch';
import { allowed, forbiddenMessage, type PolicyRule, type RequestAttributes } from './rbac';
import { meta, nameOf, type NodeEvent, Store } from './store';

export interface Identity {
  user: string;
  groups?: string[];
  rules: PolicyRule[];
}

/** users.json */
export interface UsersFile {
  tokens: Record<string, Identity>;
}

/** One line of requests.jsonl. */
export interface RequestRecord {
  time: string;
  /** "" when unauthenticated. */
  user: string;
  method: string;
  /** Path and query as sent. */
  url: string;
  /** Empty for non-resource paths (/version, /api, ...). */
  verb: string;
  resource: string;
  subresource: string;
  namespace: string;
  name: string;
  code: number;
  userAgent: string;
}

/** A canned failure: the next `count` requests matching `match` get `code`. */
export interface Fault {
  match: Partial<Pick<RequestAttributes, 'verb' | 'resource' | 'subresource' | 'name'>> & { user?: string };
  count: number;
  code: number;
  message?: string;
}

export const PATCH_TYPES = ['application/json-patch+json', 'application/merge-patch+json', 'application/strategic-merge-patch+json'];
const BODY_LIMIT = 3 * 1024 * 1024; // the real server's default --max-request-bytes for JSON is 3 MB
const DEFAULT_WATCH_TIMEOUT_S = 1800; // its --min-request-timeout
const VERSION = {
  major: '1',
  minor: '32',
  gitVersion: 'v1.32.0+weftlab',
  gitCommit: '0000000000000000000000000000000000000000',
  gitTreeState: 'clean',
  buildDate: '2025-01-01T00:00:00Z',
  goVersion: 'go1.23.0',
  compiler: 'gc',
  platform: 'linux/amd64',
};

// --- Status objects ------------------------------------------------------------

class ApiError extends Error {
  constructor(readonly status: JsonObject) {
    super(status.message as string);
  }
  get code(): number {
    return this.status.code as number;
  }
}

function statusObject(code: number, reason: string, message: string, details?: JsonObject): JsonObject {
  const s: JsonObject = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message };
  if (reason) s.reason = reason;
  if (details) s.details = details;
  s.code = code;
  return s;
}

const fail = (code: number, reason: string, message: string, details?: JsonObject) => new ApiError(statusObject(code, reason, message, details));

// The reason and text the real server's generic responses carry for a code.
const GENERIC: Record<number, [string, string]> = {
  400: ['BadRequest', 'the server rejected our request for an unknown reason'],
  401: ['Unauthorized', 'Unauthorized'],
  403: ['Forbidden', 'forbidden'],
  404: ['NotFound', 'the server could not find the requested resource'],
  405: ['MethodNotAllowed', 'the server does not allow this method on the requested resource'],
  409: ['Conflict', 'the server reported a conflict'],
  410: ['Expired', 'too old resource version'],
  422: ['Invalid', 'the server rejected our request due to an error in our request'],
  429: ['TooManyRequests', 'the server has received too many requests and has asked us to try again later'],
  500: ['InternalError', 'Internal error occurred: injected failure'],
  503: ['ServiceUnavailable', 'the server is currently unable to handle the request'],
  504: ['Timeout', 'the server was unable to return a response in the time allotted, but may still be processing the request'],
};

function genericError(code: number, message?: string): ApiError {
  const [reason, text] = GENERIC[code] ?? [code >= 500 ? 'InternalError' : '', `the server responded with the status code ${code}`];
  return fail(code, reason, message ?? text, code === 429 ? { retryAfterSeconds: 1 } : undefined);
}

const notFound = (resource: string, name: string) => fail(404, 'NotFound', `${resource} ${JSON.stringify(name)} not found`, { name, kind: resource });

const conflict = (name: string, why: string) =>
  fail(409, 'Conflict', `Operation cannot be fulfilled on nodes ${JSON.stringify(name)}: ${why}`, { name, kind: 'nodes' });

const OPTIMISTIC_LOCK = 'the object has been modified; please apply your changes to the latest version and try again';

/** A 422 for one field of a Node, worded as field.ErrorList renders it. */
function invalid(name: string, field: string, detail: string, causeReason = 'FieldValueInvalid'): ApiError {
  return fail(422, 'Invalid', `Node ${JSON.stringify(name)} is invalid: ${field}: ${detail}`, {
    name,
    kind: 'Node',
    causes: [{ reason: causeReason, message: detail, field }],
  });
}

// --- resourceVersion parameters -------------------------------------------------

/** A resourceVersion query parameter: "" and "0" mean "any"; anything but digits is the real server's error. */
function parseRv(raw: string | null, forWatch: boolean): number {
  if (raw === null || raw === '' || raw === '0') return 0;
  if (/^[0-9]+$/.test(raw)) return Number(raw);
  const detail = `resourceVersion: Invalid value: ${JSON.stringify(raw)}: strconv.ParseUint: parsing ${JSON.stringify(raw)}: invalid syntax`;
  // The watch path interprets storage's InvalidError as a 422; list and get pass it on as a 500.
  if (forWatch) return fatal(fail(422, 'Invalid', `nodes "" is invalid: ${detail}`, { kind: 'nodes', causes: [{ reason: 'FieldValueInvalid', message: detail, field: 'resourceVersion' }] }));
  return fatal(fail(500, '', detail));
}

function fatal(e: ApiError): never {
  throw e;
}

function tooLarge(rv: number, current: number): ApiError {
  return fail(504, 'Timeout', `Timeout: Too large resource version: ${rv}, current: ${current}`, {
    causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }],
    retryAfterSeconds: 1,
  });
}

// --- continue tokens (the real server's shape: base64url JSON) -------------------

function encodeContinue(rv: number, lastName: string): string {
  return Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', rv, start: `${lastName}\u0000` })).toString('base64url');
}

function decodeContinue(token: string): { rv: number; start: string } {
  try {
    const c = JSON.parse(Buffer.from(token, 'base64url').toString()) as { v?: string; rv?: number; start?: string };
    if (c.v !== 'meta.k8s.io/v1' || typeof c.rv !== 'number' || typeof c.start !== 'string') throw new Error('unrecognized token');
    return { rv: c.rv, start: c.start.replace(/\u0000$/, '') };
  } catch (err) {
    throw fail(400, 'BadRequest', `continue key is not valid: ${(err as Error).message}`);
  }
}

// --- selectors -------------------------------------------------------------------

type Predicate = (node: JsonObject) => boolean;

function fieldSelector(raw: string | null): Predicate {
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
function labelSelector(raw: string | null): Predicate {
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

// --- node validation ---------------------------------------------------------------

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

// --- the server ----------------------------------------------------------------------

interface Route {
  attrs: RequestAttributes;
  /** The collection path with ?watch, or /watch/. */
  watch: boolean;
}

/** Splits a resource path into the authorizer's attributes; null for anything else. */
function route(method: string, pathname: string, query: URLSearchParams): Route | null {
  const p = pathname.replace(/\/+$/, '').split('/').slice(1);
  if (p[0] !== 'api' || p[1] !== 'v1' || p.length < 3) return null;
  let rest = p.slice(2);
  const legacyWatch = rest[0] === 'watch';
  if (legacyWatch) rest = rest.slice(1);
  let namespace = '';
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const [resource, name = '', subresource = '', ...extra] = rest;
  if (!resource || extra.length > 0) return null;
  const watchParam = query.get('watch');
  // ?watch turns a GET of a collection into a watch, never a GET of one object (RequestInfo).
  const watch = method === 'GET' && (legacyWatch || (!name && (watchParam === 'true' || watchParam === '1')));
  let verb: string;
  switch (method) {
    case 'GET':
      verb = watch ? 'watch' : name ? 'get' : 'list';
      break;
    case 'PATCH':
      verb = 'patch';
      break;
    case 'PUT':
      verb = 'update';
      break;
    case 'POST':
      verb = 'create';
      break;
    case 'DELETE':
      verb = name ? 'delete' : 'deletecollection';
      break;
    default:
      verb = method.toLowerCase();
  }
  return { attrs: { verb, apiGroup: '', resource, subresource, namespace, name }, watch };
}

interface Watcher {
  res: http.ServerResponse;
  bookmarks: boolean;
  close(): void;
}

class ApiServer {
  readonly store: Store;
  private users: UsersFile;
  private readonly watchers = new Set<Watcher>();
  private faults: Fault[] = [];
  private readonly https: https.Server;
  private readonly admin: http.Server;

  constructor(
    private readonly dir: string,
    private readonly listen: { host: string; port: number },
    private readonly bookmarkMs: number,
  ) {
    this.store = Store.open(path.join(dir, 'state.json'));
    this.users = this.readUsers();
    this.https = https.createServer(
      { cert: fs.readFileSync(path.join(dir, 'pki', 'server.crt')), key: fs.readFileSync(path.join(dir, 'pki', 'server.key')) },
      (req, res) => void this.serve(req, res),
    );
    this.admin = http.createServer((req, res) => void this.serveAdmin(req, res));
  }

  async start(): Promise<void> {
    const sock = path.join(this.dir, 'admin.sock');
    fs.rmSync(sock, { force: true });
    await new Promise<void>((resolve, reject) => {
      this.https.once('error', reject);
      this.https.listen(this.listen.port, this.listen.host, () => resolve());
    });
    await new Promise<void>((resolve, reject) => {
      this.admin.once('error', reject);
      this.admin.listen(sock, () => resolve());
    });
  }

  stop(): void {
    this.dropWatches('cut');
    this.https.close();
    this.https.closeAllConnections();
    this.admin.close();
    this.admin.closeAllConnections();
  }

  private readUsers(): UsersFile {
    const f = path.join(this.dir, 'users.json');
    return fs.existsSync(f) ? (JSON.parse(fs.readFileSync(f, 'utf8')) as UsersFile) : { tokens: {} };
  }

  // --- the API ---

  private async serve(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://lab');
    const rec: RequestRecord = {
      time: new Date().toISOString(),
      user: '',
      method: req.method ?? '',
      url: req.url ?? '',
      verb: '',
      resource: '',
      subresource: '',
      namespace: '',
      name: '',
      code: 0,
      userAgent: req.headers['user-agent'] ?? '',
    };
    res.setHeader('Audit-Id', randomUUID());
    res.setHeader('Cache-Control', 'no-cache, private');
    try {
      const id = this.authenticate(req);
      rec.user = id.user;
      const r = route(req.method ?? '', url.pathname, url.searchParams);
      if (!r) {
        rec.code = this.serveNonResource(req, res, url.pathname);
        return;
      }
      Object.assign(rec, r.attrs);
      if (!allowed(id.rules, r.attrs)) {
        const a = r.attrs;
        throw fail(403, 'Forbidden', forbiddenMessage(id.user, a), { ...(a.name ? { name: a.name } : {}), kind: a.resource });
      }
      if (!acceptsJson(req.headers.accept)) {
        throw fail(406, 'NotAcceptable', 'only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf');
      }
      const fault = this.takeFault(id.user, r.attrs);
      if (fault && !(r.watch && fault.code === 410)) throw genericError(fault.code, fault.message);
      if (r.watch) {
        rec.code = 200;
        if (fault) this.serveExpiredWatch(res, fault.message ?? 'too old resource version: injected');
        else this.serveWatch(res, r.attrs, url.searchParams);
        return;
      }
      const body = ['PATCH', 'PUT', 'POST'].includes(req.method ?? '') ? await readBody(req) : '';
      const out = this.handle(req, r.attrs, url.searchParams, body);
      rec.code = 200;
      sendJson(res, 200, out);
    } catch (err) {
      const e = err instanceof ApiError ? err : fail(500, 'InternalError', `Internal error occurred: ${(err as Error).message}`);
      rec.code = e.code;
      if (e.code === 429) res.setHeader('Retry-After', '1');
      if (!res.headersSent) sendJson(res, e.code, e.status);
      else res.destroy();
    } finally {
      fs.appendFileSync(path.join(this.dir, 'requests.jsonl'), `${JSON.stringify(rec)}\n`);
    }
  }

  private authenticate(req: http.IncomingMessage): Identity {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    const id = m ? this.users.tokens[m[1]] : undefined;
    if (!id) throw genericError(401);
    return id;
  }

  private takeFault(user: string, a: RequestAttributes): Fault | null {
    const f = this.faults.find(
      (x) =>
        x.count > 0 &&
        (x.match.user === undefined || x.match.user === user) &&
        (['verb', 'resource', 'subresource', 'name'] as const).every((k) => x.match[k] === undefined || x.match[k] === a[k]),
    );
    if (!f) return null;
    f.count--;
    this.faults = this.faults.filter((x) => x.count > 0);
    return f;
  }

  /** Discovery and health, open to every authenticated user (system:discovery). */
  private serveNonResource(req: http.IncomingMessage, res: http.ServerResponse, pathname: string): number {
    const p = pathname.replace(/\/+$/, '') || '/';
    if (req.method !== 'GET') throw genericError(405);
    switch (p) {
      case '/version':
        return sendJson(res, 200, VERSION);
      case '/api':
        return sendJson(res, 200, {
          kind: 'APIVersions',
          versions: ['v1'],
          serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: `${this.listen.host}:${this.listen.port}` }],
        });
      case '/apis':
        return sendJson(res, 200, { kind: 'APIGroupList', apiVersion: 'v1', groups: [] });
      case '/api/v1':
        return sendJson(res, 200, {
          kind: 'APIResourceList',
          groupVersion: 'v1',
          resources: [
            { name: 'nodes', singularName: 'node', namespaced: false, kind: 'Node', verbs: ['get', 'list', 'patch', 'update', 'watch'], shortNames: ['no'] },
            { name: 'nodes/status', singularName: '', namespaced: false, kind: 'Node', verbs: ['get', 'patch', 'update'] },
            { name: 'pods', singularName: 'pod', namespaced: true, kind: 'Pod', verbs: ['get'], shortNames: ['po'], categories: ['all'] },
          ],
        });
      case '/healthz':
      case '/livez':
      case '/readyz':
        res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
        res.end('ok');
        return 200;
      default:
        throw fail(404, 'NotFound', 'the server could not find the requested resource', {});
    }
  }

  private handle(req: http.IncomingMessage, a: RequestAttributes, q: URLSearchParams, body: string): JsonObject {
    if (a.resource === 'pods' && a.namespace && a.name && !a.subresource && a.verb === 'get') {
      const pod = this.store.pods.get(`${a.namespace}/${a.name}`);
      if (!pod) throw notFound('pods', a.name);
      return pod;
    }
    if (a.resource !== 'nodes' || a.namespace || !['', 'status'].includes(a.subresource) || (a.subresource && !a.name)) {
      throw fail(404, 'NotFound', 'the server could not find the requested resource', {});
    }
    switch (a.verb) {
      case 'list':
        return this.listNodes(q);
      case 'get':
        return this.getNode(a.name, q);
      case 'patch':
        return this.patchNode(a.name, a.subresource === 'status', req.headers['content-type'] ?? '', body);
      case 'update':
        return this.updateNode(a.name, a.subresource === 'status', req.headers['content-type'] ?? '', body);
      default:
        throw genericError(405);
    }
  }

  private checkNotFuture(q: URLSearchParams, forWatch: boolean): number {
    const rv = parseRv(q.get('resourceVersion'), forWatch);
    if (rv > this.store.resourceVersion) throw tooLarge(rv, this.store.resourceVersion);
    return rv;
  }

  private getNode(name: string, q: URLSearchParams): JsonObject {
    this.checkNotFuture(q, false);
    const node = this.store.nodes.get(name);
    if (!node) throw notFound('nodes', name);
    return node;
  }

  private listNodes(q: URLSearchParams): JsonObject {
    const match = fieldSelector(q.get('fieldSelector'));
    const labels = labelSelector(q.get('labelSelector'));
    const limit = Number(q.get('limit') ?? '0');
    if (!Number.isInteger(limit) || limit < 0) throw fail(400, 'BadRequest', `limit: Invalid value: ${JSON.stringify(q.get('limit'))}`);
    const token = q.get('continue');
    let listRv = this.store.resourceVersion;
    let start = '';
    let nodes: JsonObject[] | null;
    if (token) {
      const c = decodeContinue(token);
      listRv = c.rv;
      start = c.start;
      nodes = this.store.nodesAt(c.rv);
      if (!nodes) {
        throw fail(
          410,
          'Expired',
          'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.',
        );
      }
    } else {
      const rv = this.checkNotFuture(q, false);
      if (q.get('resourceVersionMatch') === 'Exact' && rv > 0) {
        nodes = this.store.nodesAt(rv);
        if (!nodes) throw fail(410, 'Expired', 'The resourceVersion for the provided list is too old.');
        listRv = rv;
      } else nodes = this.store.nodesAt(listRv);
    }
    const selected = nodes!.filter((n) => match(n) && labels(n) && (start === '' || nameOf(n) > start));
    const page = limit > 0 ? selected.slice(0, limit) : selected;
    const listMeta: JsonObject = { resourceVersion: String(listRv) };
    if (page.length < selected.length) {
      listMeta.continue = encodeContinue(listRv, nameOf(page[page.length - 1]));
      if (!q.get('fieldSelector') && !q.get('labelSelector')) listMeta.remainingItemCount = selected.length - page.length;
    }
    // List items carry no apiVersion/kind on the wire; the list does.
    const items = page.map(({ apiVersion: _v, kind: _k, ...rest }) => rest);
    return { kind: 'NodeList', apiVersion: 'v1', metadata: listMeta, items };
  }

  private patchNode(name: string, status: boolean, contentType: string, body: string): JsonObject {
    const type = contentType.split(';')[0].trim();
    if (!PATCH_TYPES.includes(type)) {
      throw fail(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: ${PATCH_TYPES.join(', ')}`);
    }
    const current = this.store.nodes.get(name);
    if (!current) throw notFound('nodes', name);
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
    if (!isObject(patched)) throw invalid(name, 'patch', `Invalid value: ${JSON.stringify(patched)}: the patched document is not an object`);
    return this.writeNode(name, current, patched, status);
  }

  private updateNode(name: string, status: boolean, contentType: string, body: string): JsonObject {
    // No Content-Type is read as the first serializer's, JSON (negotiation.NegotiateInputSerializer).
    if (!['', 'application/json'].includes(contentType.split(';')[0].trim())) {
      throw fail(415, 'UnsupportedMediaType', 'the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf, application/cbor');
    }
    const current = this.store.nodes.get(name);
    if (!current) throw notFound('nodes', name);
    let obj: Json;
    try {
      obj = JSON.parse(body) as Json;
    } catch (err) {
      throw fail(400, 'BadRequest', `error decoding the body: ${(err as Error).message}`);
    }
    if (!isObject(obj) || !isObject(obj.metadata)) throw fail(400, 'BadRequest', 'the body is not a Node object');
    // An update without a resourceVersion is unconditional for nodes.
    if (!obj.metadata.resourceVersion) obj = { ...obj, metadata: { ...obj.metadata, resourceVersion: meta(current).resourceVersion } };
    return this.writeNode(name, current, obj, status);
  }

  /**
   * The checks and rules every write to a node goes through, then the write:
   * name and uid must match, a resourceVersion given must be the stored one;
   * the main resource keeps the stored status and the status subresource the
   * stored spec; a write that changes nothing stores nothing.
   */
  private writeNode(name: string, current: JsonObject, next: JsonObject, status: boolean): JsonObject {
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
    const candidate: JsonObject = { ...next, apiVersion: 'v1', kind: 'Node' };
    if (status) candidate.spec = current.spec;
    else candidate.status = current.status;
    if (candidate.spec === undefined) delete candidate.spec;
    if (candidate.status === undefined) delete candidate.status;
    candidate.metadata = { ...m, name, uid: meta(current).uid, creationTimestamp: meta(current).creationTimestamp, resourceVersion: meta(current).resourceVersion };
    if (isObject(candidate.spec)) candidate.spec = { ...candidate.spec };
    syncPodCidrs(candidate);
    validateNode(candidate, current);
    if (JSON.stringify(candidate) === JSON.stringify(current)) return current;
    return this.store.putNode(candidate).object;
  }

  // --- watch ---

  private serveWatch(res: http.ServerResponse, a: RequestAttributes, q: URLSearchParams): void {
    const match = a.name ? (n: JsonObject) => nameOf(n) === a.name : fieldSelector(q.get('fieldSelector'));
    const labels = labelSelector(q.get('labelSelector'));
    const rv = parseRv(q.get('resourceVersion'), true);
    const timeoutS = Number(q.get('timeoutSeconds') ?? DEFAULT_WATCH_TIMEOUT_S);
    const bookmarks = q.get('allowWatchBookmarks') === 'true';
    const initialEvents = q.get('sendInitialEvents') === 'true';
    const backlog = rv > 0 && !initialEvents ? this.store.eventsAfter(rv) : null;
    if (rv > 0 && !initialEvents && !backlog) {
      this.serveExpiredWatch(res, `too old resource version: ${rv} (${this.store.watchFloor})`);
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.flushHeaders(); // a client waits for them before it counts the watch as started
    const write = (type: string, object: JsonObject) => res.write(`${JSON.stringify({ type, object })}\n`);
    const selected = (n: JsonObject) => match(n) && labels(n);
    if (backlog) {
      for (const e of backlog) if (selected(e.object)) write(e.type, e.object);
    } else {
      // No resourceVersion (or 0): the current state as ADDED events, then changes.
      for (const n of this.store.nodesAt(this.store.resourceVersion)!) if (selected(n)) write('ADDED', n);
      if (initialEvents && bookmarks) write('BOOKMARK', this.bookmark({ 'k8s.io/initial-events-end': 'true' }));
    }
    const unsubscribe = this.store.subscribe((e: NodeEvent) => {
      if (selected(e.object)) write(e.type, e.object);
    });
    const w: Watcher = {
      res,
      bookmarks,
      close: () => {
        unsubscribe();
        clearInterval(bookmarkTimer);
        clearTimeout(timeout);
        this.watchers.delete(w);
      },
    };
    this.watchers.add(w);
    const bookmarkTimer = setInterval(() => bookmarks && write('BOOKMARK', this.bookmark()), this.bookmarkMs);
    const timeout = setTimeout(() => res.end(), Math.max(1, timeoutS) * 1000);
    res.on('close', w.close);
  }

  private bookmark(annotations?: Record<string, string>): JsonObject {
    const m: JsonObject = { resourceVersion: String(this.store.resourceVersion), creationTimestamp: null };
    if (annotations) m.annotations = annotations;
    return { kind: 'Node', apiVersion: 'v1', metadata: m };
  }

  /** What the real server's watch cache does for a resourceVersion it no longer has: 200, one ERROR event, end. */
  private serveExpiredWatch(res: http.ServerResponse, message: string): void {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(`${JSON.stringify({ type: 'ERROR', object: statusObject(410, 'Expired', message) })}\n`);
  }

  /**
   * 'cut' resets the connections, as a crash or a broken network does; 'end'
   * finishes the streams cleanly, as the server does when a watch times out.
   */
  private dropWatches(how: 'cut' | 'end'): number {
    const n = this.watchers.size;
    for (const w of [...this.watchers]) {
      w.close();
      if (how === 'end') w.res.end();
      else w.res.destroy();
    }
    return n;
  }

  // --- admin, for the test driving the lab (apiserver-process.ts) ---

  private async serveAdmin(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    try {
      const body = await readBody(req);
      const input = body ? (JSON.parse(body) as JsonObject) : {};
      const p = (req.url ?? '/').split('/').slice(1).map(decodeURIComponent);
      const key = `${req.method} /${p[0] ?? ''}`;
      switch (key) {
        case 'GET /healthz':
          return void sendJson(res, 200, { resourceVersion: this.store.resourceVersion, pid: process.pid });
        case 'GET /nodes': {
          const node = this.store.nodes.get(p[1]);
          return void sendJson(res, node ? 200 : 404, node ?? { error: `no node ${p[1]}` });
        }
        case 'PUT /nodes':
          return void sendJson(res, 200, this.store.putNode({ ...input, metadata: { ...(input.metadata as JsonObject), name: p[1] } }).object);
        case 'DELETE /nodes': {
          const e = this.store.deleteNode(p[1]);
          return void sendJson(res, e ? 200 : 404, e ? e.object : { error: `no node ${p[1]}` });
        }
        case 'PUT /pods':
          return void sendJson(res, 200, this.store.putPod({ ...input, metadata: { ...(input.metadata as JsonObject), namespace: p[1], name: p[2] } }));
        case 'PUT /users':
          if (typeof input.user !== 'string' || !Array.isArray(input.rules)) throw new Error('an identity needs a string "user" and a list of "rules"');
          this.users.tokens[p[1]] = input as unknown as Identity;
          fs.writeFileSync(path.join(this.dir, 'users.json'), JSON.stringify(this.users, null, 2));
          return void sendJson(res, 200, {});
        case 'POST /drop-watches':
          if (input.how !== 'cut' && input.how !== 'end') throw new Error(`drop-watches: how must be "cut" or "end", not ${JSON.stringify(input.how)}`);
          return void sendJson(res, 200, { dropped: this.dropWatches(input.how) });
        case 'POST /compact':
          return void sendJson(res, 200, { floor: this.store.compact() });
        case 'POST /bookmark': {
          const ws = [...this.watchers].filter((w) => w.bookmarks);
          for (const w of ws) w.res.write(`${JSON.stringify({ type: 'BOOKMARK', object: this.bookmark() })}\n`);
          return void sendJson(res, 200, { sent: ws.length });
        }
        case 'POST /faults':
          if (!isObject(input.match) || !Number.isInteger(input.count) || !Number.isInteger(input.code) || (input.code as number) < 400 || (input.code as number) > 599) {
            throw new Error('a fault needs a "match" object, a whole "count" and an HTTP error "code" (400..599)');
          }
          this.faults.push(input as unknown as Fault);
          return void sendJson(res, 200, {});
        default:
          return void sendJson(res, 404, { error: `no admin operation ${key}` });
      }
    } catch (err) {
      sendJson(res, 400, { error: (err as Error).message });
    }
  }
}

function acceptsJson(accept: string | undefined): boolean {
  if (!accept) return true;
  return accept.split(',').some((entry) => {
    const [type, ...params] = entry.split(';').map((s) => s.trim());
    // "as=Table" and the like ask for another kind of answer than the object.
    return ['*/*', 'application/*', 'application/json'].includes(type) && !params.some((x) => x.startsWith('as='));
  });
}

function sendJson(res: http.ServerResponse, code: number, obj: unknown): number {
  const text = JSON.stringify(obj);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
  return code;
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > BODY_LIMIT) {
        reject(fail(413, 'RequestEntityTooLarge', 'Request entity too large: limit is 3145728'));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function usage(problem: string): never {
  process.stderr.write(`apiserver: ${problem}\nusage: apiserver --dir DIR --listen IP:PORT [--bookmark-ms N]\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opt = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const dir = opt('--dir') ?? usage('--dir is required');
  const listen = opt('--listen') ?? usage('--listen is required');
  const m = /^(.+):(\d+)$/.exec(listen);
  if (!m || net.isIP(m[1]) !== 4) usage(`--listen ${JSON.stringify(listen)} is not IPv4:PORT`);
  const bookmarkMs = Number(opt('--bookmark-ms') ?? '60000');
  if (!Number.isInteger(bookmarkMs) || bookmarkMs < 10) usage(`--bookmark-ms ${JSON.stringify(opt('--bookmark-ms'))} is not a whole number of milliseconds >= 10`);
  for (const f of ['server.crt', 'server.key']) {
    if (!fs.existsSync(path.join(dir, 'pki', f))) usage(`${path.join(dir, 'pki', f)} is missing (pki.ts makes it)`);
  }
  const server = new ApiServer(dir, { host: m![1], port: Number(m![2]) }, bookmarkMs);
  await server.start();
  process.stdout.write(`apiserver: serving https://${listen} at resourceVersion ${server.store.resourceVersion}\n`);
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.once(sig, () => {
      server.stop();
      process.exit(0);
    });
  }
}

if (require.main === module) {
  main().catch((err: Error) => {
    process.stderr.write(`apiserver: ${err.message}\n`);
    process.exit(1);
  });
}
