// The one place that loads the addon and gives it types. Everything else in
// src/ imports `addon` from here and never touches require() for native code.
import * as path from 'node:path';

import type { NativeCoreBenchClass, NativeEncap, NativeEngineClass, NativeOffload } from './engine-types';
import type { NativeNetlink } from './netlink-types';

export * from './engine-types';
export * from './netlink-types';

export interface Addon {
  Engine: NativeEngineClass;
  CoreBench: NativeCoreBenchClass;
  encap: NativeEncap;
  netlink: NativeNetlink;
  offload: NativeOffload;
  /** Sends one sd_notify(3) datagram ("READY=1") to a unix socket path or @abstract name; throws with .code. */
  sdNotify(socketPath: string, message: string): void;
}

// WEFT_ADDON names a build to use instead (the sanitizer tier sets it);
// otherwise release first, then a debug build (node-gyp --debug).
const CANDIDATES = ['build/Release/weft.node', 'build/Debug/weft.node'];

function load(): Addon {
  const root = path.resolve(__dirname, '..', '..', '..');
  const tried: string[] = [];
  const files = process.env.WEFT_ADDON ? [process.env.WEFT_ADDON] : CANDIDATES.map((rel) => path.join(root, rel));
  for (const file of files) {
    try {
      return require(file) as Addon;
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code !== 'MODULE_NOT_FOUND') throw err;
      tried.push(file);
    }
  }
  throw new Error(
    `weft: native addon not found; run \`npm install\` (or \`npx node-gyp rebuild\`) first. Tried:\n  ${tried.join('\n  ')}`,
  );
}

export const addon: Addon = load();
