// The packet core must build without Node (docs/design.md: boundaries), so the
// fuzzers and core tests can link it alone.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { it } from 'node:test';

const CORE = path.resolve(__dirname, '..', '..', '..', 'native', 'core');

it('native/core includes neither napi.h nor uv.h', () => {
  const files = fs.readdirSync(CORE).filter((f) => /\.(h|cc)$/.test(f));
  assert.ok(files.length > 5, `core sources found in ${CORE}`);
  for (const f of files) {
    const text = fs.readFileSync(path.join(CORE, f), 'utf8');
    assert.doesNotMatch(text, /#\s*include\s*[<"](napi\.h|uv\.h|node_api\.h)[>"]/, f);
  }
});

// netlink's lower level (messages) must stay socket-free, so the fuzzer and
// the byte tests can drive it with no kernel; rtnl.* and nl_socket.* sit on top.
it('native/core/nl_msg.* opens no socket and includes no level above it', () => {
  for (const f of ['nl_msg.h', 'nl_msg.cc']) {
    const text = fs.readFileSync(path.join(CORE, f), 'utf8');
    assert.doesNotMatch(text, /#\s*include\s*"core\/(nl_socket|rtnl|sys_error)\.h"/, f);
    assert.doesNotMatch(text, /\b(socket|sendto|sendmsg|recvmsg|recv|bind)\s*\(/, f);
  }
});
