// What every weft command shares: one-line errors and flag parsing with
// --help, so no command ever answers a typo with a stack trace.
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A mistake in how the command was called: one line, exit 1. */
export class UsageError extends Error {}

export function fail(message: string): never {
  process.stderr.write(`weft: ${message}\n`);
  process.exit(1);
}

export type Values = Record<string, string | boolean | undefined>;

/** util.parseArgs (every command takes --help), its errors as one line naming the flag. */
export function args(argv: string[], options: NonNullable<ParseArgsConfig['options']>): { values: Values; positionals: string[] } {
  try {
    const r = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean' } }, allowPositionals: true, strict: true });
    return { values: r.values as Values, positionals: r.positionals };
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/\. To specify.*$/s, ''));
  }
}

export function intOption(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new UsageError(`--${name} must be a whole number, got "${v}"`);
  return Number(v);
}
