// Who may do what on the lab API server: rules shaped like a ClusterRole's,
// matched the way the RBAC authorizer matches them, and the denial text the
// real server writes (k8s.io/apiserver responsewriters/errors.go), so a test
// can read from a 403 which verb on which resource a role lacks, and hold
// what a client asked for (KubeApiServer.access) against what a role grants.

export interface PolicyRule {
  /** "" is the core group; "*" any. */
  apiGroups: string[];
  /** "nodes", "nodes/status", "*", or "*\/status" (any resource's status). */
  resources: string[];
  /** get, list, watch, patch, update, create, delete, or "*". */
  verbs: string[];
  /** Limits the rule to these object names (never matches list, watch or create of a collection). */
  resourceNames?: string[];
}

/** One API request as the authorizer sees it. */
export interface RequestAttributes {
  verb: string;
  apiGroup: string;
  resource: string;
  subresource: string;
  namespace: string;
  name: string;
}

/** flannel's ClusterRole, from kube-flannel.yml (docs/flanneld-parity.md §4.3). */
export const FLANNEL_RULES: PolicyRule[] = [
  { apiGroups: [''], resources: ['pods'], verbs: ['get'] },
  { apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch'] },
  { apiGroups: [''], resources: ['nodes/status'], verbs: ['patch'] },
];

/** cluster-admin's. */
export const ADMIN_RULES: PolicyRule[] = [{ apiGroups: ['*'], resources: ['*'], verbs: ['*'] }];

const has = (list: string[], v: string) => list.includes('*') || list.includes(v);

function resourceMatches(rule: PolicyRule, a: RequestAttributes): boolean {
  const combined = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  return rule.resources.some((r) => r === '*' || r === combined || (a.subresource !== '' && r === `*/${a.subresource}`));
}

export function allowed(rules: PolicyRule[], a: RequestAttributes): boolean {
  return rules.some(
    (rule) =>
      has(rule.verbs, a.verb) &&
      has(rule.apiGroups, a.apiGroup) &&
      resourceMatches(rule, a) &&
      (!rule.resourceNames?.length || (a.name !== '' && rule.resourceNames.includes(a.name))),
  );
}

/** The message of the real server's 403 Status for a resource request. */
export function forbiddenMessage(user: string, a: RequestAttributes): string {
  const resource = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const qualified = a.apiGroup ? `${a.resource}.${a.apiGroup}` : a.resource;
  const subject = a.name ? `${qualified} ${JSON.stringify(a.name)}` : qualified;
  const scope = a.namespace ? `in the namespace ${JSON.stringify(a.namespace)}` : 'at the cluster scope';
  return `${subject} is forbidden: User ${JSON.stringify(user)} cannot ${a.verb} resource ${JSON.stringify(resource)} in API group ${JSON.stringify(a.apiGroup)} ${scope}`;
}

/**
 * What rules grant, as "verb resource[/subresource]" strings sorted like
 * KubeApiServer.access(): comparable with what a client used. Wildcards and
 * other groups than the core one are left out: a role meant to be minimal
 * has neither.
 */
export function grants(rules: PolicyRule[]): string[] {
  const out = new Set<string>();
  for (const r of rules) {
    if (!r.apiGroups.includes('')) continue;
    for (const verb of r.verbs) for (const res of r.resources) if (verb !== '*' && !res.includes('*')) out.add(`${verb} ${res}`);
  }
  return [...out].sort();
}
