#!/usr/bin/env bash
# The sanitizer tier: builds the addon with AddressSanitizer and UBSan
# (binding.gyp's one variable, WEFT_SANITIZE=1) in a scratch copy, so the
# release build stays, then runs the tests that drive the native code
# against it: the packet core's pure functions, the engines in namespaces
# (every wire format, offloads on and off, floods, forged ICMP, spoofing,
# loops, kernel peers, DirectRouting) and rtnetlink. The store, lease and
# control-plane tests run no native code of their own and are left to the
# first pass. Any report from either sanitizer fails the run. Test files
# given as arguments replace the default list.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$root/build-sanitize
rm -rf "$work"
mkdir -p "$work"
cp -r binding.gyp package.json native "$work/"
ln -s "$root/node_modules" "$work/node_modules"
# Through npm, so node-gyp gets the same configuration (headers) as npm install.
(cd "$work" && WEFT_SANITIZE=1 npx --no-install node-gyp rebuild >build.log 2>&1) || {
  tail -30 "$work/build.log"
  exit 1
}

# node itself is not instrumented: the ASan runtime must be loaded first.
export LD_PRELOAD="$(gcc -print-file-name=libasan.so)"
# V8 and node keep memory until exit on purpose: leak reports would be noise.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export WEFT_ADDON="$work/build/Release/weft.node"
node -e "require('./dist/src/native'); console.log('sanitizer build loaded:', process.env.WEFT_ADDON)"
if [ $# -eq 0 ]; then
  set -- dist/test/unit/encap.test.js dist/test/unit/offload.test.js dist/test/unit/netlink.test.js \
    dist/test/netns/overlay.test.js dist/test/netns/udp-format.test.js dist/test/netns/flood.test.js \
    dist/test/netns/path-mtu.test.js dist/test/netns/spoofing.test.js dist/test/netns/loop.test.js \
    dist/test/netns/netlink.test.js dist/test/netns/direct-routing.test.js dist/test/interop/kernel-interop.test.js
fi
exec node --test --test-concurrency=1 "$@"
