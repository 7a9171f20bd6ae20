#!/usr/bin/env bash
# Installs, from Debian's packages, the system tools that weft's tests and
# demo drive, when they are missing. Safe to run again: it installs nothing
# that is already there. Needs root (the netns tests need it anyway).
#   ensure-tools.sh        everything the tests, fuzzers and benchmarks use
#   ensure-tools.sh demo   only what `npm run demo` uses
set -euo pipefail

# command -> Debian package
declare -A want=(
  [ip]=iproute2
  [bridge]=iproute2
  [ping]=iputils-ping
  [iperf3]=iperf3
  [tcpdump]=tcpdump
  [ethtool]=ethtool
  [etcd]=etcd-server
  [etcdctl]=etcd-client
  [clang++-14]=clang-14
  # --ip-masq and the forward rules (src/netfilter): both of flannel's traffic
  # managers; the CNI plugins run iptables too (bridge's ipMasq, portmap).
  [iptables]=iptables
  [iptables-restore]=iptables
  [iptables-save]=iptables
  [ip6tables]=iptables
  [nft]=nftables
  # The lab's Kubernetes API server (certificates) and kubectl, run against it.
  [openssl]=openssl
  [kubectl]=kubernetes-client
)

if [ "${1:-}" = demo ]; then
  # openssl and kubectl for `npm run demo -- --kube` (the lab API server's certificates, kubectl get nodes).
  want=([ip]=iproute2 [ping]=iputils-ping [iperf3]=iperf3 [iptables]=iptables [openssl]=openssl [kubectl]=kubernetes-client)
fi

missing=()
for cmd in "${!want[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${want[$cmd]}")
done
# The CNI plugins (bridge, host-local, portmap, loopback: lab/cni.ts) are
# files in /usr/lib/cni, not commands on PATH.
[ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
# libFuzzer's runtime (scripts/fuzz.sh) is a library, not a command.
if [ "${1:-}" != demo ]; then
  compgen -G '/usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-*.a' >/dev/null || missing+=(libclang-rt-14-dev)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

mapfile -t pkgs < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "ensure-tools: installing ${pkgs[*]}" >&2
if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-tools: need root to install ${pkgs[*]} (apt-get)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# iperf3's package asks whether to start a daemon; the answer is no.
echo "iperf3 iperf3/start_daemon boolean false" | debconf-set-selections 2>/dev/null || true
# Nor may etcd-server start a system etcd on 2379: the tests run their own.
# policy-rc.d answering 101 tells the packages' scripts not to start services.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && made_policy=1
fi
trap 'if [ "$made_policy" = 1 ]; then rm -f "$policy"; fi' EXIT
apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
