// flanneld's health endpoints (main.go mustRunHealthz): `/healthz` answers
// 200 "flanneld is running" as soon as the server is up (it starts before
// the network config is read, so a liveness probe passes while weft waits
// for its config), `/readyz` answers 200 "flanneld is ready" once subnet.env
// is written and 503 "flanneld is not ready yet" before. The bodies are
// flanneld's so probes and runbooks written for it keep working.
//
// The server listens on --healthz-ip (0.0.0.0 by default, as flanneld: bind
// it to 127.0.0.1 or the node's address so pods cannot reach it), holds at
// most MAX_CONNECTIONS sockets and gives each only seconds, so a client that
// opens thousands of idle connections cannot take the daemon's descriptors.
import * as http from 'node:http';

import type { Logger } from '../log';

const MAX_CONNECTIONS = 64;
const TIMEOUT_MS = 5_000;

export interface HealthzOptions {
  ip: string;
  port: number;
  log: Logger;
  ready: () => boolean;
  /** Extra routes (e.g. /metrics): path -> handler giving content type and body. */
  routes?: Record<string, () => Promise<{ type: string; body: string }>>;
}

export async function serveHealthz(o: HealthzOptions): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path === '/healthz') {
      res.writeHead(200).end('flanneld is running');
    } else if (path === '/readyz') {
      if (o.ready()) res.writeHead(200).end('flanneld is ready');
      else res.writeHead(503).end('flanneld is not ready yet');
    } else if (o.routes?.[path]) {
      o.routes[path]().then(
        (r) => res.writeHead(200, { 'Content-Type': r.type }).end(r.body),
        (err: Error) => res.writeHead(500).end(`${err.message}\n`),
      );
    } else {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('404 page not found\n');
    }
  });
  server.maxConnections = MAX_CONNECTIONS;
  server.headersTimeout = TIMEOUT_MS;
  server.requestTimeout = TIMEOUT_MS;
  server.keepAliveTimeout = 1_000;
  server.setTimeout(TIMEOUT_MS, (sock) => sock.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new Error(`cannot serve healthz on ${o.ip}:${o.port}: ${err.message}`)));
    server.listen(o.port, o.ip, () => resolve());
  });
  // From here on an error is logged, never thrown out of the process.
  server.removeAllListeners('error');
  server.on('error', (err) => o.log.error({ err: err.message }, `healthz server: ${err.message}`));
  o.log.info(`serving healthz on ${o.ip}:${o.port}`);
  return server;
}
