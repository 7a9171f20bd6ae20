// The libFuzzer targets in native/fuzz/ (scripts/fuzz.sh), each for a
// short bounded time, so CI keeps them honest: a crash, a sanitizer report
// or a broken invariant fails the test with the input that caused it.
// `npm run fuzz` runs them longer.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { it } from 'node:test';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const SECONDS = 20;
const TARGETS = ['fuzz_decap_vxlan', 'fuzz_decap_udp', 'fuzz_netlink', 'fuzz_gso_segment', 'fuzz_coalesce', 'fuzz_encap', 'fuzz_fib'];
// Running time plus a cold build of every target (and clang's install, if
// it is missing) on a slow machine.
const TIMEOUT_MS = (TARGETS.length * (SECONDS + 30) + 600) * 1000;

interface Run {
  code: number | null;
  out: string;
}

function fuzz(seconds: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['scripts/fuzz.sh', String(seconds)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

// "fuzz: fuzz_netlink      execs=1234 exec/s=56 cov=700 ft=3000 corpus=600 crashes=0 status=ok"
function figures(out: string): Map<string, Record<string, string>> {
  const byTarget = new Map<string, Record<string, string>>();
  for (const line of out.split('\n')) {
    const m = /^fuzz: (\S+)\s+(.*)$/.exec(line);
    if (!m || !m[2].includes('=')) continue;
    byTarget.set(m[1], Object.fromEntries(m[2].split(/\s+/).map((kv) => kv.split('=', 2) as [string, string])));
  }
  return byTarget;
}

it(`every fuzz target runs ${SECONDS} s with no crash`, { timeout: TIMEOUT_MS }, async (t) => {
  const run = await fuzz(SECONDS);
  const found = figures(run.out);
  for (const [target, f] of found) {
    t.diagnostic(`${target}: ${f.execs} executions, cov ${f.cov}, ft ${f.ft}, corpus ${f.corpus}, ${f.crashes} crashes, ${f.status}`);
  }
  assert.equal(run.code, 0, `scripts/fuzz.sh ${SECONDS} failed:\n${run.out.slice(-6000)}`);
  for (const target of TARGETS) {
    const f = found.get(target);
    assert.ok(f, `no figures for ${target}:\n${run.out.slice(-3000)}`);
    assert.equal(f.status, 'ok', target);
    assert.equal(f.crashes, '0', target);
    assert.ok(Number(f.execs) > 0, `${target} ran no inputs`);
    assert.ok(Number(f.cov) > 0, `${target} reported no coverage`);
  }
});
