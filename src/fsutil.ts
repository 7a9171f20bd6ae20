// Files a root daemon creates get the modes it means, whatever umask it was
// started under (a umask of 000 would otherwise make them world-writable).
import * as fs from 'node:fs';
import * as path from 'node:path';

/** mkdir -p with every directory it creates set to exactly 0755; ENOTDIR if a file is in the way. */
export function ensureDir(dir: string): void {
  const missing: string[] = [];
  let d = path.resolve(dir);
  for (; !fs.existsSync(d); d = path.dirname(d)) missing.unshift(d);
  if (!fs.statSync(d).isDirectory()) throw Object.assign(new Error(`${d} is not a directory`), { code: 'ENOTDIR' });
  for (const m of missing) {
    try {
      fs.mkdirSync(m, 0o755);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err; // made meanwhile by another process
      continue;
    }
    fs.chmodSync(m, 0o755);
  }
}

/** Creates the file if missing (never through a symlink) and sets its mode, owner-only by default. */
export function ensureFileMode(file: string, mode = 0o600): void {
  const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, mode);
  try {
    fs.fchmodSync(fd, mode);
  } finally {
    fs.closeSync(fd);
  }
}

/** Sets the mode of a file if it exists (SQLite's -wal and -shm beside its database). */
export function chmodIfExists(file: string, mode: number): void {
  try {
    fs.chmodSync(file, mode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
