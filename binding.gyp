{
  # One build of record for the addon. `WEFT_SANITIZE=1 npm install` (or
  # `WEFT_SANITIZE=1 npx node-gyp rebuild`) builds with AddressSanitizer and
  # UndefinedBehaviorSanitizer, -O1 and frame pointers; the loader finds it
  # in the same place as the release build.
  "variables": {
    "weft_sanitize%": "<!(node -p \"process.env.WEFT_SANITIZE || '0'\")"
  },
  "targets": [
    {
      "target_name": "weft",
      "sources": [
        "native/bench/core_bench.cc",
        "native/core/addr.cc",
        "native/core/checksum.cc",
        "native/core/encap.cc",
        "native/core/engine.cc",
        "native/core/fib.cc",
        "native/core/offload.cc",
        "native/core/nl_msg.cc",
        "native/core/nl_socket.cc",
        "native/core/rtnl.cc",
        "native/core/rx_path.cc",
        "native/core/sd_notify.cc",
        "native/core/sys_error.cc",
        "native/core/tun.cc",
        "native/core/tx_path.cc",
        "native/core/udp_socket.cc",
        "native/napi/addon.cc",
        "native/napi/bench_binding.cc",
        "native/napi/engine_binding.cc",
        "native/napi/netlink_binding.cc",
        "native/napi/notify_binding.cc",
        "native/napi/offload_binding.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "native"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_CPP_EXCEPTIONS_ALL"],
      "cflags!": ["-fno-exceptions", "-O3"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-O3"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "conditions": [
        ["weft_sanitize==1", {
          "cflags_cc": ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"],
          "ldflags": ["-fsanitize=address,undefined"]
        }, {
          "cflags_cc": ["-O2"]
        }]
      ]
    }
  ]
}
