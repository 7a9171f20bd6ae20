// flannel's udp backend: TUN flannel0, each inner packet is the whole UDP
// payload (flannel's proxy format), port 8285, MTU = interface MTU - 28.
import { Engine } from '../engine';
import { EngineBackend, tunMtu } from './engine-backend';
import type { Backend, BackendOptions } from './types';

export function openUdp(o: BackendOptions): Backend {
  if (o.cfg.Backend.Type !== 'udp') throw new Error('udp backend given another config');
  const engine = Engine.open({
    backend: 'udp',
    bindIp: o.ext.ifaceAddr,
    port: o.cfg.Backend.Port,
    mtu: tunMtu('udp', o.ext.mtu, `"${o.ext.name}"`),
    allowAnySource: o.allowAnySource,
    strictSource: o.strictSource,
  });
  return new EngineBackend(engine, { type: 'udp' }, o.log);
}
