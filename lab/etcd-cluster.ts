// A lab with its etcd on a host of its own, as a cluster has it: the
// daemons reach it over the underlay, the test drives it with etcdctl from
// inside that host.
//
//     etcd 192.168.77.100:2379
//        |
//     ===br0=== node1 .1, node2 .2, node3 .3
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { DaemonProcess } from './daemon-process';
import { type EtcdServer, etcdctlPut, startEtcd } from './etcd';
import type { Netns } from './netns';
import { Lab, type LabNode } from './topology';

export const ETCD_IP = '192.168.77.100';
export const ETCD_PREFIX = '/coreos.com/network';

export class EtcdLab {
  private constructor(
    readonly lab: Lab,
    readonly etcdHost: Netns,
    readonly etcd: EtcdServer,
    readonly dir: string,
  ) {}

  static async create(prefix: string, nodes: number): Promise<EtcdLab> {
    const lab = Lab.create(prefix, nodes);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    try {
      const host = lab.addHost('etcd', ETCD_IP);
      const etcd = await startEtcd({ ns: host, listenIp: ETCD_IP, clientPort: 2379, peerPort: 2380, dataDir: path.join(dir, 'etcd') });
      return new EtcdLab(lab, host, etcd, dir);
    } catch (err) {
      lab.destroy();
      fs.rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  get endpoint(): string {
    return this.etcd.endpoint;
  }

  /** etcdctl options that run it on the etcd host. */
  get ctl() {
    return { ns: this.etcdHost };
  }

  async putConfig(conf: unknown): Promise<void> {
    await etcdctlPut(this.endpoint, `${ETCD_PREFIX}/config`, JSON.stringify(conf), this.ctl);
  }

  daemon(node: LabNode, extra: string[] = []): DaemonProcess {
    return DaemonProcess.spawn({
      node,
      dir: path.join(this.dir, `node${node.index}`),
      args: ['--etcd-endpoints', this.endpoint, '--etcd-prefix', ETCD_PREFIX, ...extra],
    });
  }

  async destroy(): Promise<void> {
    await this.etcd.stop().catch(() => undefined);
    this.lab.destroy();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
