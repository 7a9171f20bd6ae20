// subnet.env: the file flannel's CNI plugin reads (flannel's WriteSubnetFile
// and ReadCIDRFromSubnetFile). Written whole into a temp file beside it and
// renamed over it, so the plugin never sees half a file.
//
// The directory may be shared with other writers (a hostPath volume), so the
// temp file has an unpredictable name and is created exclusively without
// following symlinks: nothing planted there can redirect the write. Reading
// back does not follow a symlink either, and no error quotes the file's
// content (it could be anything a symlink pointed at).
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fchmodSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

import { type Cidr4, formatCidr4, parseCidr4 } from '../cidr';
import { ensureDir } from '../fsutil';

export interface SubnetEnv {
  network: Cidr4;
  /** The node's lease; the file names its first address (FLANNEL_SUBNET=10.5.72.1/24). */
  subnet: Cidr4;
  mtu: number;
  ipMasq: boolean;
}

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
  ensureDir(dir);
  const tmp = join(dir, `.${basename(path)}.${randomBytes(8).toString('hex')}.tmp`);
  try {
    const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
    try {
      writeSync(fd, formatSubnetEnv(env));
      fchmodSync(fd, 0o644); // exactly 0644 whatever the umask, as flannel's renameio.IgnoreUmask
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    // rename() replaces a symlink at `path` itself; it never writes through it.
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

/**
 * The values found, or null when there is no file. Like flannel, each key
 * is read on its own: a bad FLANNEL_MTU does not lose FLANNEL_SUBNET.
 * FLANNEL_SUBNET gives back the subnet itself (10.5.72.1/24 -> 10.5.72.0/24),
 * as flannel reads it. Problems come back as `warnings` (naming the line,
 * never quoting it); a symlink is not followed.
 */
export function readSubnetEnv(path: string): { env: Partial<SubnetEnv>; warnings: string[] } | null {
  let text: string;
  try {
    const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      text = readFileSync(fd, 'utf8');
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    if (code === 'ELOOP') return { env: {}, warnings: [`${path} is a symlink; not following it`] };
    throw e;
  }
  const env: Partial<SubnetEnv> = {};
  const warnings: string[] = [];
  text.split('\n').forEach((raw, i) => {
    // dotenv syntax as flannel's reader (godotenv) takes it: comments, blank lines, "export ", quotes.
    const line = raw.trim().replace(/^export\s+/, '');
    if (line === '' || line.startsWith('#')) return;
    const eq = line.indexOf('=');
    if (eq <= 0) {
      warnings.push(`${path}:${i + 1}: not a KEY=VALUE line`);
      return;
    }
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim().replace(/^(["'])(.*)\1$/, '$2');
    try {
      switch (key) {
        case 'FLANNEL_NETWORK':
          env.network = parseCidr4(value);
          break;
        case 'FLANNEL_SUBNET':
          env.subnet = parseCidr4(value);
          break;
        case 'FLANNEL_MTU':
          if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 65535) throw new Error('not an MTU');
          env.mtu = Number(value);
          break;
        case 'FLANNEL_IPMASQ':
          // What flannel's CNI plugin does: exactly "true" is true.
          env.ipMasq = value === 'true';
          break;
      }
    } catch {
      warnings.push(`${path}:${i + 1}: ${key} has a value that is not valid`);
    }
  });
  return { env, warnings };
}
