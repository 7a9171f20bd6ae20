// `npm run bench -- --only control`, etcd part: run on the lab's etcd host,
// it writes leases in flannel's layout and answers one JSON line per
// command (one JSON line in) so the bench can time what a daemon does with
// them. Each lease is flannel's: its own etcd lease (TTL 24 h) and a value
// as flanneld writes it for the vxlan backend.
//
//   {"op":"fill","from":1,"to":5000}  -> {"ok":true,"seconds":..}
//   {"op":"put","index":70000}        -> {"ok":true,"startMs":..,"endMs":..,"subnet":"10.a.b.0/24"}
import * as readline from 'node:readline';

import { Etcd3 } from 'etcd3';

import { formatCidr4, formatIp4 } from '../src/cidr';
import { syntheticPeer } from './control-engine';

const PREFIX = '/coreos.com/network/subnets/';
const TTL = 86_400;
const CONCURRENCY = 64;

function keyValue(i: number): { key: string; value: string; subnet: string } {
  const p = syntheticPeer(i);
  const subnet = formatCidr4(p.subnet);
  const value = `{"PublicIP":"${formatIp4(p.publicIp)}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${p.vtepMac}"}}`;
  return { key: PREFIX + subnet.replace('/', '-'), value, subnet };
}

async function main(): Promise<void> {
  const client = new Etcd3({ hosts: process.argv[2] });
  const put = async (i: number) => {
    const { key, value } = keyValue(i);
    const grant = await client.leaseClient.leaseGrant({ TTL, ID: 0 });
    await client.kv.put({ key: Buffer.from(key), value: Buffer.from(value), lease: grant.ID });
  };
  const rl = readline.createInterface({ input: process.stdin });
  const send = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);
  rl.on('line', (line) => {
    void (async () => {
      try {
        const cmd = JSON.parse(line) as { op: string; from?: number; to?: number; index?: number };
        if (cmd.op === 'fill') {
          const t0 = Date.now();
          let next = cmd.from!;
          const worker = async () => {
            while (next <= cmd.to!) await put(next++);
          };
          await Promise.all(Array.from({ length: CONCURRENCY }, worker));
          send({ ok: true, seconds: (Date.now() - t0) / 1000 });
        } else if (cmd.op === 'put') {
          const startMs = Date.now();
          await put(cmd.index!);
          send({ ok: true, startMs, endMs: Date.now(), subnet: keyValue(cmd.index!).subnet });
        } else {
          send({ ok: false, error: `unknown op ${cmd.op}` });
        }
      } catch (err) {
        send({ ok: false, error: (err as Error).message });
      }
    })();
  });
  rl.on('close', () => client.close());
}

main().catch((err) => {
  process.stderr.write(`control-etcd: ${(err as Error).stack ?? err}\n`);
  process.exitCode = 1;
});
