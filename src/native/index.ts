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
}

// Release first, then a debug or sanitizer build (node-gyp --debug).
const CANDIDATES = ['build/Release/weft.node', 'build/Debug/weft.node'];

function load(): Addon {
  const root = path.resolve(__dirname, '..', '..', '..');
  const tried: string[] = [];
  for (const rel of CANDIDATES) {
    const file = path.join(root, rel);
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
