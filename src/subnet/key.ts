// flannel's subnet keys: "10.5.52.0-24", dual stack "10.5.52.0-24&fd00::-64".
import { type Cidr4, formatIp4, parseCidr4 } from '../cidr';

// flannel's pattern is (\d+\.\d+.\d+.\d+)-(\d+)(?:&([a-f\d:]+)-(\d+))?$ with two
// unescaped dots; the round trip below rejects what those dots let through.
const KEY = /(\d+\.\d+\.\d+\.\d+)-(\d+)(?:&([a-f\d:]+)-(\d+))?$/;

/** The subnet named by the last path element of a key; null if it is not one. */
export function parseSubnetKey(key: string): Cidr4 | null {
  const m = KEY.exec(key.slice(key.lastIndexOf('/') + 1));
  if (!m) return null;
  try {
    const c = parseCidr4(`${m[1]}/${m[2]}`);
    // flannel keys always name the network address itself.
    return formatIp4(c.ip) === m[1] ? c : null;
  } catch {
    return null;
  }
}

export function subnetKey(subnet: Cidr4): string {
  return `${formatIp4(subnet.ip)}-${subnet.prefixLen}`;
}
