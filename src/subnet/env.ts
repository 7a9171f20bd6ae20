// subnet.env: the file flannel's CNI plugin reads (flannel's WriteSubnetFile
// and ReadCIDRFromSubnetFile). Written whole into a temp file beside it and
// renamed over it, so the plugin never sees half a file.
import { closeSync, fchmodSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

import { type Cidr4, formatCidr4, parseCidr4 } from '../cidr';

export interface SubnetEnv {
  network: Cidr4;
  /** The node's lease; the file names its first address (FLANNEL_SUBNET=10.5.72.1/24). */
  subnet: Cidr4;
  mtu: number;
  ipMasq: boolean;
}

export const DEFAULT_SUBNET_FILE = '/run/flannel/subnet.env';

export function formatSubnetEnv(env: SubnetEnv): string {
  const gateway: Cidr4 = { ip: env.subnet.ip + 1, prefixLen: env.subnet.prefixLen };
  return (
    `FLANNEL_NETWORK=${formatCidr4(env.network)}\n` +
    `FLANNEL_SUBNET=${formatCidr4(gateway)}\n` +
    `FLANNEL_MTU=${env.mtu}\n` +
    `FLANNEL_IPMASQ=${env.ipMasq}\n`
  );
}

export function writeSubnetEnv(path: string, env: SubnetEnv): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  // pid in the name: two daemons never share a subnet file, but a stale temp
  // file from a crashed one must not be reused half-written.
  const tmp = join(dir, `.${basename(path)}.${process.pid}.tmp`);
  try {
    const fd = openSync(tmp, 'w', 0o644);
    try {
      writeSync(fd, formatSubnetEnv(env));
      fchmodSync(fd, 0o644); // exactly 0644 whatever the umask
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  // The rename itself survives a crash only once the directory is synced.
  const dfd = openSync(dir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

// Go's strconv.ParseBool, which flannel's CNI plugin uses for FLANNEL_IPMASQ.
const BOOLS: Record<string, boolean> = {
  '1': true, t: true, T: true, true: true, TRUE: true, True: true,
  '0': false, f: false, F: false, false: false, FALSE: false, False: false,
};

/**
 * The values found (each may be missing), or null when there is no file.
 * FLANNEL_SUBNET gives back the subnet itself (10.5.72.1/24 -> 10.5.72.0/24),
 * as flannel reads it. Other keys (FLANNEL_IPV6_*) are ignored.
 */
export function readSubnetEnv(path: string): Partial<SubnetEnv> | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  const out: Partial<SubnetEnv> = {};
  text.split('\n').forEach((raw, i) => {
    const fail = (why: string): never => {
      throw new Error(`${path}:${i + 1}: ${why}`);
    };
    // dotenv syntax as flannel's reader (godotenv) takes it: comments, blank lines, "export ", quotes.
    const line = raw.trim().replace(/^export\s+/, '');
    if (line === '' || line.startsWith('#')) return;
    const eq = line.indexOf('=');
    if (eq <= 0) fail(`expected KEY=VALUE, got ${JSON.stringify(raw)}`);
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim().replace(/^(["'])(.*)\1$/, '$2');
    const cidr = (): Cidr4 => {
      try {
        return parseCidr4(value);
      } catch (e) {
        return fail(`${key}: ${(e as Error).message}`);
      }
    };
    switch (key) {
      case 'FLANNEL_NETWORK':
        out.network = cidr();
        break;
      case 'FLANNEL_SUBNET':
        out.subnet = cidr();
        break;
      case 'FLANNEL_MTU':
        if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 65535) fail(`FLANNEL_MTU: not an MTU: ${JSON.stringify(value)}`);
        out.mtu = Number(value);
        break;
      case 'FLANNEL_IPMASQ':
        if (!Object.hasOwn(BOOLS, value)) fail(`FLANNEL_IPMASQ: not a boolean: ${JSON.stringify(value)}`);
        out.ipMasq = BOOLS[value];
        break;
    }
  });
  return out;
}
