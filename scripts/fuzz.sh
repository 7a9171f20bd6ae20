#!/usr/bin/env bash
# Builds the libFuzzer targets in native/fuzz/ (clang 14, ASan + UBSan,
# straight against the core sources they test: no Node, no addon) into
# build/fuzz/, then runs each for a bounded time, one process at a time.
#
#   scripts/fuzz.sh [SECONDS]   each target for SECONDS (default 60)
#   scripts/fuzz.sh seeds       rewrite native/fuzz/corpus/ with make_seeds.cc
#
# A target first replays its inputs in native/fuzz/regressions/<target>/,
# then fuzzes a copy of native/fuzz/corpus/<target>/ in build/fuzz/corpus/
# (the checked-in seeds never grow by themselves). It prints one line per
# target with libFuzzer's final figures; a crash prints the sanitizer's
# report and the input, and the script exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."

out=build/fuzz
cxx=clang++-14
flags=(-std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Wall -Wextra -I native)

# target -> the core sources it links, and its -max_len: a TUN super-packet
# is up to 64 KB; so is a datagram from a kernel peer's GSO, but the decap
# targets take the TUN MTU from the input, so 4 KB reaches every branch.
declare -A srcs=(
  [fuzz_decap_vxlan]="encap.cc fib.cc offload.cc checksum.cc addr.cc"
  [fuzz_decap_udp]="encap.cc fib.cc offload.cc checksum.cc addr.cc"
  [fuzz_netlink]="nl_msg.cc addr.cc"
  [fuzz_gso_segment]="offload.cc encap.cc fib.cc checksum.cc addr.cc"
  [fuzz_coalesce]="offload.cc encap.cc fib.cc checksum.cc addr.cc"
  [fuzz_encap]="offload.cc encap.cc fib.cc checksum.cc addr.cc"
  [fuzz_fib]="fib.cc"
)
declare -A max_len=(
  [fuzz_decap_vxlan]=4096
  [fuzz_decap_udp]=4096
  [fuzz_netlink]=4096
  [fuzz_gso_segment]=65600
  [fuzz_coalesce]=65600
  [fuzz_encap]=4096
  [fuzz_fib]=1024
)
targets=(fuzz_decap_vxlan fuzz_decap_udp fuzz_netlink fuzz_gso_segment fuzz_coalesce fuzz_encap fuzz_fib)

have_tools() {
  command -v "$cxx" >/dev/null 2>&1 &&
    [ -e "$("$cxx" -print-resource-dir)/lib/linux/libclang_rt.fuzzer-$(uname -m).a" ]
}
if ! have_tools; then
  bash scripts/ensure-tools.sh
  have_tools || { echo "fuzz: $cxx or libFuzzer's runtime is still missing" >&2; exit 1; }
fi
mkdir -p "$out"

# Rebuilds a binary when anything in native/core or native/fuzz is newer.
build() {  # name source core-sources...
  local name=$1 src=$2
  shift 2
  local bin="$out/$name"
  if [ -x "$bin" ] && [ -z "$(find native/core native/fuzz -newer "$bin" \( -name '*.cc' -o -name '*.h' \) | head -1)" ]; then
    return 0
  fi
  echo "fuzz: building $name" >&2
  "$cxx" "$@" "$src" -o "$bin"
}

if [ "${1:-}" = seeds ]; then
  build make_seeds native/fuzz/make_seeds.cc -std=c++17 -O1 -I native \
    native/core/encap.cc native/core/fib.cc native/core/offload.cc native/core/checksum.cc native/core/nl_msg.cc native/core/addr.cc native/core/sys_error.cc
  rm -rf native/fuzz/corpus
  "$out/make_seeds" native/fuzz/corpus
  du -sh native/fuzz/corpus/* >&2
  exit 0
fi

secs=${1:-60}
[[ "$secs" =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [SECONDS-PER-TARGET | seeds]" >&2; exit 2; }

for t in "${targets[@]}"; do
  core=()
  for s in ${srcs[$t]}; do core+=("native/core/$s"); done
  build "$t" "native/fuzz/$t.cc" "${flags[@]}" "${core[@]}"
done

# One key=value line per target; test/unit/fuzz.test.ts reads them.
report() {  # target log status artifacts-dir
  local log=$2
  local execs rate last cov ft corp crashes
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
  crashes=$(find "$4" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
  [ "$3" = ok ] || [ "$crashes" -gt 0 ] || crashes=1  # a failed regression leaves no artifact
  printf 'fuzz: %-17s execs=%s exec/s=%s cov=%s ft=%s corpus=%s crashes=%s status=%s\n' \
    "$1" "${execs:-0}" "${rate:-0}" "${cov:-0}" "${ft:-0}" "${corp:-0}" "$crashes" "$3"
}

# What a failure left: the sanitizer's or invariant's report, the input.
show_failure() {  # target log artifacts-dir
  echo "---- $1: $(grep -m1 -E 'ERROR: |invariant failed|runtime error|Timeout|out-of-memory' "$2" || echo 'failed')"
  grep -E '^Running: ' "$2" | tail -1 || true  # which regression input, if it was one
  grep -E -A24 'ERROR: |invariant failed|runtime error' "$2" | head -25 || tail -25 "$2"
  local f
  for f in "$3"/crash-* "$3"/leak-* "$3"/timeout-* "$3"/oom-*; do
    [ -e "$f" ] || continue
    echo "---- input $f ($(stat -c %s "$f") bytes; reproduce: $out/$1 $f)"
    od -An -tx1 -v "$f" | head -16
  done
}

failed=0
for t in "${targets[@]}"; do
  bin="$out/$t"
  log="$out/$t.log"
  art="$out/artifacts/$t"
  rm -rf "$out/corpus/$t" "$art"
  mkdir -p "$out/corpus/$t" "$art"
  cp native/fuzz/corpus/"$t"/* "$out/corpus/$t/"
  : >"$log"

  regressions=()
  if [ -d "native/fuzz/regressions/$t" ]; then
    mapfile -t regressions < <(find "native/fuzz/regressions/$t" -type f | sort)
  fi
  if [ ${#regressions[@]} -gt 0 ] &&
    ! "$bin" -artifact_prefix="$art/" "${regressions[@]}" >>"$log" 2>&1; then
    report "$t" "$log" "regression-failed" "$art"
    show_failure "$t" "$log" "$art"
    failed=1
    continue
  fi

  status=ok
  timeout --kill-after=10 $((secs + 60)) "$bin" \
    -max_total_time="$secs" -max_len="${max_len[$t]}" -timeout=10 -rss_limit_mb=1024 \
    -print_final_stats=1 -artifact_prefix="$art/" "$out/corpus/$t" >>"$log" 2>&1 || status=crashed
  report "$t" "$log" "$status" "$art"
  if [ "$status" != ok ]; then
    show_failure "$t" "$log" "$art"
    failed=1
  fi
done
exit $failed
