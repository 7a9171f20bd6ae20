// iperf3 between two lab namespaces, bounded in time: one server run per
// test (-1), the client's JSON report parsed.
import type { Netns } from './netns';

export interface IperfResult {
  bitsPerSecond: number;
  retransmits: number;
}

export async function iperf3(client: Netns, server: Netns, serverIp: string, seconds: number, extra: string[] = []): Promise<IperfResult> {
  // --forceflush: a piped iperf3 would hold back "Server listening".
  const srv = server.spawn('iperf3', ['-s', '-1', '-p', '5201', '--forceflush']);
  try {
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('iperf3 server did not start')), 5000);
      srv.stdout!.on('data', (d: Buffer) => {
        if (d.toString().includes('Server listening')) {
          clearTimeout(t);
          resolve();
        }
      });
      srv.once('exit', (code) => reject(new Error(`iperf3 server exited ${code}`)));
    });
    const out = client.exec('iperf3', ['-c', serverIp, '-p', '5201', '-t', String(seconds), '-J', ...extra], (seconds + 20) * 1000);
    const j = JSON.parse(out);
    if (j.error) throw new Error(`iperf3: ${j.error}`);
    const sum = j.end.sum_received ?? j.end.sum;
    return { bitsPerSecond: sum.bits_per_second, retransmits: j.end.sum_sent?.retransmits ?? 0 };
  } finally {
    srv.kill('SIGKILL');
  }
}
