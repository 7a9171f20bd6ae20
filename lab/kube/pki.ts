// TLS and client configuration for the lab API server, made the way a
// cluster operator makes them: a CA and a server certificate from the
// openssl CLI (the listen IP in subjectAltName, since Go clients such as
// kubectl ignore the common name), and for a given identity a kubeconfig or
// the in-cluster files a pod's service account gets.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface Pki {
  caCert: string;
  serverCert: string;
  serverKey: string;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    throw new Error(`openssl ${args[0]} failed: ${(e.stderr?.toString() || e.message).trim()}`);
  }
}

/**
 * <dir>/pki: a CA (made once) and a server certificate for ip, remade when it
 * does not name ip. Keys are EC P-256, which Go and Node both take.
 */
export function ensurePki(dir: string, ip: string): Pki {
  const pki = path.join(dir, 'pki');
  fs.mkdirSync(pki, { recursive: true, mode: 0o700 });
  const out = { caCert: path.join(pki, 'ca.crt'), serverCert: path.join(pki, 'server.crt'), serverKey: path.join(pki, 'server.key') };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  if (!fs.existsSync(out.caCert)) {
    openssl(
      ['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '3650', '-subj', '/CN=weft-lab-ca',
        '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
      pki,
    );
  }
  const marker = path.join(pki, 'server.ip');
  if (!fs.existsSync(out.serverCert) || !fs.existsSync(marker) || fs.readFileSync(marker, 'utf8') !== ip) {
    fs.writeFileSync(
      path.join(pki, 'server.ext'),
      [
        `subjectAltName=IP:${ip},DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local`,
        'basicConstraints=CA:FALSE',
        'keyUsage=critical,digitalSignature,keyEncipherment',
        'extendedKeyUsage=serverAuth',
      ].join('\n'),
    );
    openssl(['req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=kube-apiserver'], pki);
    openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '365', '-extfile', 'server.ext'], pki);
    fs.writeFileSync(marker, ip);
  }
  return out;
}

/**
 * A kubeconfig for one bearer token, CA inlined. Written as JSON, which
 * every kubeconfig loader (YAML) reads.
 */
export function writeKubeconfig(file: string, o: { server: string; caCert: string; user: string; token: string }): string {
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'weft-lab', cluster: { server: o.server, 'certificate-authority-data': fs.readFileSync(o.caCert).toString('base64') } }],
    users: [{ name: o.user, user: { token: o.token } }],
    contexts: [{ name: 'weft-lab', context: { cluster: 'weft-lab', user: o.user } }],
    'current-context': 'weft-lab',
  };
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(config, null, 2), { mode: 0o600 });
  return file;
}

/**
 * What a pod's service account sees in /var/run/secrets/kubernetes.io/serviceaccount
 * (token, ca.crt, namespace), written to dir, and the environment the
 * kubelet sets beside it.
 */
export function writeInClusterFiles(
  dir: string,
  o: { host: string; port: number; caCert: string; token: string; namespace: string },
): { dir: string; env: Record<string, string> } {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'token'), o.token, { mode: 0o600 });
  fs.copyFileSync(o.caCert, path.join(dir, 'ca.crt'));
  fs.writeFileSync(path.join(dir, 'namespace'), o.namespace);
  return { dir, env: { KUBERNETES_SERVICE_HOST: o.host, KUBERNETES_SERVICE_PORT: String(o.port) } };
}
