// @kubernetes/client-node's types import isomorphic-ws, whose types import
// 'ws' (and expect @types/ws). weft uses none of the client's WebSocket
// calls (exec, attach, port-forward), so the two names those types mention
// are declared opaque here rather than adding @types/ws for them.
declare module 'ws' {
  class WebSocket {}
  namespace WebSocket {
    type ClientOptions = Record<string, unknown>;
    type WebSocket = InstanceType<typeof import('ws')>;
  }
  export = WebSocket;
}
