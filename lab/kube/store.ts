// The lab API server's storage, standing in for etcd behind a real API
// server: nodes and pods, one resourceVersion counter for every write, and a
// bounded history of node events for watches and paged lists.
//
// The objects and the counter are written to one JSON file after every
// change (write then rename), so a restarted server has the same objects and
// its resourceVersions keep increasing. The history is not kept: like a real
// API server's watch cache after a restart, it starts empty at the current
// resourceVersion, so a watch from an older one gets 410 Gone. compact()
// does the same without a restart.
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';

import type { JsonObject } from './patch';

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface NodeEvent {
  type: EventType;
  rv: number;
  /** The node after the event (for DELETED: as it was, with the deletion's resourceVersion). */
  object: JsonObject;
  /** The node before the event; null for ADDED. */
  prev: JsonObject | null;
}

interface StateFile {
  resourceVersion: number;
  nodes: JsonObject[];
  pods: JsonObject[];
}

export const meta = (o: JsonObject): JsonObject => o.metadata as JsonObject;
export const nameOf = (o: JsonObject): string => meta(o).name as string;

/** RFC 3339 to the second, as the API server writes timestamps. */
export const timestamp = (d = new Date()): string => d.toISOString().replace(/\.\d+Z$/, 'Z');

export class Store {
  readonly nodes = new Map<string, JsonObject>();
  /** By "namespace/name". */
  readonly pods = new Map<string, JsonObject>();
  private rv = 0;
  private history: NodeEvent[] = [];
  /** A watch or a consistent list can start from any resourceVersion >= floor. */
  private floor = 0;
  private listeners = new Set<(e: NodeEvent) => void>();

  private constructor(
    private readonly file: string,
    private readonly historyLimit: number,
  ) {}

  static open(file: string, historyLimit = 1000): Store {
    const s = new Store(file, historyLimit);
    if (fs.existsSync(file)) {
      let state: StateFile;
      try {
        state = JSON.parse(fs.readFileSync(file, 'utf8')) as StateFile;
      } catch (err) {
        throw new Error(`${file}: not a state file: ${(err as Error).message}`);
      }
      s.rv = state.resourceVersion;
      for (const n of state.nodes) s.nodes.set(nameOf(n), n);
      for (const p of state.pods) s.pods.set(`${meta(p).namespace as string}/${nameOf(p)}`, p);
    }
    s.floor = s.rv;
    return s;
  }

  get resourceVersion(): number {
    return this.rv;
  }

  get watchFloor(): number {
    return this.floor;
  }

  /**
   * Stores node (new or replacing the one of its name) under the next
   * resourceVersion, keeping its uid and creationTimestamp if it existed.
   */
  putNode(node: JsonObject): NodeEvent {
    const name = nameOf(node);
    const prev = this.nodes.get(name) ?? null;
    const object = this.stamp(node, prev);
    this.nodes.set(name, object);
    return this.record({ type: prev ? 'MODIFIED' : 'ADDED', rv: this.rv, object, prev });
  }

  deleteNode(name: string): NodeEvent | null {
    const prev = this.nodes.get(name);
    if (!prev) return null;
    this.nodes.delete(name);
    this.rv++;
    const object = { ...prev, metadata: { ...meta(prev), resourceVersion: String(this.rv) } };
    return this.record({ type: 'DELETED', rv: this.rv, object, prev });
  }

  putPod(pod: JsonObject): JsonObject {
    const key = `${meta(pod).namespace as string}/${nameOf(pod)}`;
    const object = this.stamp(pod, this.pods.get(key) ?? null);
    this.pods.set(key, object);
    this.save();
    return object;
  }

  /** Forgets the history: a watch or continued list from before now gets 410. */
  compact(): number {
    this.history = [];
    this.floor = this.rv;
    return this.floor;
  }

  /** Node events after rv, oldest first; null when rv is older than the history. */
  eventsAfter(rv: number): NodeEvent[] | null {
    if (rv < this.floor) return null;
    return this.history.filter((e) => e.rv > rv);
  }

  /** The nodes as they were at rv, by name; null when rv is older than the history. */
  nodesAt(rv: number): JsonObject[] | null {
    if (rv < this.floor) return null;
    const at = new Map(this.nodes);
    for (let i = this.history.length - 1; i >= 0 && this.history[i].rv > rv; i--) {
      const e = this.history[i];
      if (e.prev) at.set(nameOf(e.prev), e.prev);
      else at.delete(nameOf(e.object));
    }
    return [...at.values()].sort((a, b) => (nameOf(a) < nameOf(b) ? -1 : 1));
  }

  subscribe(fn: (e: NodeEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private stamp(obj: JsonObject, prev: JsonObject | null): JsonObject {
    this.rv++;
    const m: JsonObject = {
      ...meta(obj),
      uid: prev ? meta(prev).uid : randomUUID(),
      creationTimestamp: prev ? meta(prev).creationTimestamp : timestamp(),
      resourceVersion: String(this.rv),
    };
    return { ...obj, metadata: m };
  }

  private record(e: NodeEvent): NodeEvent {
    this.history.push(e);
    if (this.history.length > this.historyLimit) this.floor = this.history.shift()!.rv;
    this.save();
    for (const fn of this.listeners) fn(e);
    return e;
  }

  private save(): void {
    const state: StateFile = { resourceVersion: this.rv, nodes: [...this.nodes.values()], pods: [...this.pods.values()] };
    const tmp = `${this.file}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(state));
    fs.renameSync(tmp, this.file);
  }
}
