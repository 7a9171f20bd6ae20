// One etcd Watch stream carrying one watcher, as a pull queue (why the
// watch is driven by hand rather than by etcd3's Watcher: see etcd.ts).
import type { Etcd3, IDuplexStream, IEvent, IWatchRequest, IWatchResponse } from 'etcd3';

export type WatchMessage =
  | { kind: 'created' }
  | { kind: 'compacted'; compactRevision: string }
  | { kind: 'behind'; revision: bigint }
  | { kind: 'progress'; revision: bigint }
  | { kind: 'events'; events: IEvent[]; lastRevision: bigint };

/**
 * One Watch stream carrying one watcher, as a pull queue. It fails (next()
 * throws) on a stream error or end, on etcd cancelling the watcher for any
 * reason but compaction, or when etcd does not acknowledge it in time.
 */
export class WatchStream {
  private readonly queue: WatchMessage[] = [];
  private failure: Error | null = null;
  private wake: (() => void) | null = null;
  private stream: IDuplexStream<IWatchRequest, IWatchResponse> | null = null;
  private closed = false;
  private createTimer: NodeJS.Timeout | null;

  constructor(
    client: Etcd3,
    private readonly startRevision: bigint,
    request: IWatchRequest['create_request'],
    createTimeoutMs: number,
  ) {
    this.createTimer = setTimeout(() => this.fail(new Error(`etcd did not acknowledge the watch within ${createTimeoutMs} ms`)), createTimeoutMs);
    client.watchClient.watch().then(
      (stream) => {
        if (this.closed) {
          stream.on('error', () => undefined);
          stream.cancel();
          return;
        }
        this.stream = stream;
        stream.on('data', (res) => this.onResponse(res));
        stream.on('error', (err) => this.fail(err));
        stream.on('end', () => this.fail(new Error('etcd closed the watch stream')));
        stream.write({ create_request: request });
      },
      (err: Error) => this.fail(err),
    );
  }

  async next(signal: AbortSignal): Promise<WatchMessage> {
    for (;;) {
      const msg = this.queue.shift();
      if (msg) return msg;
      if (this.failure) throw this.failure;
      signal.throwIfAborted();
      await new Promise<void>((resolve) => {
        const onAbort = (): void => resolve();
        signal.addEventListener('abort', onAbort, { once: true });
        this.wake = () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        };
      });
      this.wake = null;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.clearCreateTimer();
    if (this.stream) {
      // Half-close first: etcd3 takes an error on a still-writable stream as the
      // host failing and drops every channel to it. The CANCELLED error that
      // cancel() emits goes to a listener that ignores it.
      this.stream.on('error', () => undefined);
      this.stream.end();
      this.stream.cancel();
    }
  }

  private onResponse(res: IWatchResponse): void {
    if (res.compact_revision && res.compact_revision !== '0') {
      this.clearCreateTimer();
      this.push({ kind: 'compacted', compactRevision: res.compact_revision });
    } else if (res.canceled) {
      this.fail(new Error(`etcd cancelled the watch: ${res.cancel_reason || 'no reason given'}`));
    } else if (res.created) {
      this.clearCreateTimer();
      this.push({ kind: 'created' });
      // A store younger than our cursor (restored or wiped) would only send
      // what comes after the cursor and miss everything up to it.
      const revision = BigInt(res.header.revision);
      if (revision + 1n < this.startRevision) this.push({ kind: 'behind', revision });
    } else if (res.events.length > 0) {
      let last = 0n;
      for (const ev of res.events) {
        const r = BigInt(ev.kv.mod_revision);
        if (r > last) last = r;
      }
      this.push({ kind: 'events', events: res.events, lastRevision: last });
    } else {
      this.push({ kind: 'progress', revision: BigInt(res.header.revision) });
    }
  }

  private push(msg: WatchMessage): void {
    if (this.closed || this.failure) return;
    this.queue.push(msg);
    this.wake?.();
  }

  private fail(err: Error): void {
    this.clearCreateTimer();
    if (this.closed || this.failure) return;
    this.failure = err;
    this.wake?.();
  }

  private clearCreateTimer(): void {
    if (this.createTimer) clearTimeout(this.createTimer);
    this.createTimer = null;
  }
}
/** gRPC's message, without the empty "Resolution note:" grpc-js appends. */
export function errText(err: unknown): string {
  return (err as Error).message.replace(/\.?\s*Resolution note:\s*$/, '');
}
