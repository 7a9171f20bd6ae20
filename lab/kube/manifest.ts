// deploy/kube-weft.yml as the lab uses it: the ClusterRole's rules are the
// identity weft's daemons get on the lab API server, the DaemonSet's args
// and net-conf.json are what they run with, so what the lab proves is
// about the manifest an operator applies, not a copy of it.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { parseAllDocuments } from 'yaml';

import type { PolicyRule } from './rbac';

export const MANIFEST = path.resolve(__dirname, '..', '..', '..', 'deploy', 'kube-weft.yml');

export type ManifestObject = { kind: string; metadata: { name: string; namespace?: string }; [k: string]: unknown };

/** Every object in the manifest, in order; throws naming the file on a YAML error. */
export function manifestObjects(file = MANIFEST): ManifestObject[] {
  const docs = parseAllDocuments(fs.readFileSync(file, 'utf8'));
  if (!Array.isArray(docs)) throw new Error(`${file}: not a YAML stream`);
  return docs.map((d, i) => {
    if (d.errors.length) throw new Error(`${file}: document ${i + 1}: ${d.errors[0].message}`);
    return d.toJS() as ManifestObject;
  });
}

export function manifestObject(kind: string, objects = manifestObjects()): ManifestObject {
  const found = objects.filter((o) => o.kind === kind);
  if (found.length !== 1) throw new Error(`${MANIFEST}: expected one ${kind}, found ${found.length}`);
  return found[0];
}

/** The ClusterRole's rules. */
export function manifestRules(objects = manifestObjects()): PolicyRule[] {
  return (manifestObject('ClusterRole', objects) as unknown as { rules: PolicyRule[] }).rules;
}

export interface ContainerSpec {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: Array<{ name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }>;
  [k: string]: unknown;
}

export function daemonSetPod(objects = manifestObjects()): { containers: ContainerSpec[]; initContainers: ContainerSpec[]; [k: string]: unknown } {
  const ds = manifestObject('DaemonSet', objects) as unknown as { spec: { template: { spec: { containers: ContainerSpec[]; initContainers: ContainerSpec[] } } } };
  return ds.spec.template.spec;
}

/** The DaemonSet's one container: weft's. */
export function weftContainer(objects = manifestObjects()): ContainerSpec {
  const [c, ...more] = daemonSetPod(objects).containers;
  if (!c || more.length) throw new Error(`${MANIFEST}: the DaemonSet should run one container`);
  return c;
}

/** The ConfigMap's files (net-conf.json, cni-conf.json). */
export function manifestConfig(objects = manifestObjects()): Record<string, string> {
  return (manifestObject('ConfigMap', objects) as unknown as { data: Record<string, string> }).data;
}
