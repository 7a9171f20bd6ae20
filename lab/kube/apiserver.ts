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
// This file is the HTTP side; the API's rules live beside it: status.ts
// (error objects), list-options.ts (query parameters), node-strategy.ts
// (what a write to a node may change), patch.ts, rbac.ts, store.ts.
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as path from 'node:path';

import { decodeContinue, encodeContinue, fieldSelector, labelSelector, parseRv, tooLarge } from './list-options';
import { applyNodePatch, prepareNodeWrite } from './node-strategy';
import { isObject, type Json, type JsonObject } from './patch';
import { allowed, forbiddenMessage, type PolicyRule, type RequestAttributes } from './rbac';
import { ApiError, fail, genericError, notFound, statusObject } from './status';
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
        return this.patchNode(a.name, a.subresource as '' | 'status', req.headers['content-type'] ?? '', body);
      case 'update':
        return this.updateNode(a.name, a.subresource as '' | 'status', req.headers['content-type'] ?? '', body);
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

  private patchNode(name: string, subresource: '' | 'status', contentType: string, body: string): JsonObject {
    const current = this.store.nodes.get(name);
    if (!current) throw notFound('nodes', name);
    return this.writeNode(current, applyNodePatch(current, contentType, body), subresource);
  }

  private updateNode(name: string, subresource: '' | 'status', contentType: string, body: string): JsonObject {
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
    return this.writeNode(current, obj, subresource);
  }

  private writeNode(current: JsonObject, next: JsonObject, subresource: '' | 'status'): JsonObject {
    const node = prepareNodeWrite(current, next, subresource);
    return node ? this.store.putNode(node).object : current;
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
