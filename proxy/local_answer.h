#pragma once
// Why an exchange ended other than with a server's whole answer: the proxy
// answered itself (refused the request, found no route, shed it, could not
// get a server's answer), or the response was cut short. The cause decides
// the status of a local answer, whether the connection can go on after it,
// whether a stale cached response may stand in, and the access log's
// `cause=` field (HAProxy's termination state, Envoy's response flags).

#include <cstdint>

namespace crest::proxy {

enum class LocalCause : uint8_t {
  None,          // a server (or the cache) answered in full
  BadRequest,    // malformed or ambiguous request
  UriTooLong,    // the request target alone is over max_header_bytes
  HeadTooLarge,  // the head is over max_header_bytes or max_headers
  BodyTooLarge,  // the body is over max_request_body
  HeadTimeout,   // the head did not arrive within client_header
  NoRoute,       // no route matches
  RateLimited,   // the route's rate limit refused it
  QueueFull,  // the pool was busy and its queue full (or a more important request took the place)
  QueueTimeout,     // the pool had no free slot within the queue's timeout
  NoHealthyServer,  // the pool has no healthy server
  ConnectFailed,    // no server of the pool could be connected to
  UpstreamClosed,   // the server closed the connection without a response
  UpstreamTimeout,  // the server did not answer within upstream_response
  InvalidResponse,  // the server's response broke HTTP
  UpstreamReset,    // the server's response was cut short: the client connection closed early
  ClientClosed,     // the client went away before its response was sent
  TunnelIdle,       // a WebSocket tunnel moved no byte within timeouts.tunnel_idle
  AccessDenied,     // the route's access lists refused the client
  FaultInjected,    // the route's fault aborted it on purpose (abort_status)
};

struct LocalCauseInfo {
  int status;            // of the local answer; 0 for causes that end a response already begun
  bool request_fault;    // the request itself was refused: the connection closes after the answer
  bool pool_failed;      // the pool could not answer: a stale cached response may answer instead
  const char* log_name;  // the access log's cause= value
};

const LocalCauseInfo& describe(LocalCause cause);

// The cause of a request the parser refused, from the status it chose (400, 413, 414, 431).
LocalCause requestErrorCause(int status);

}  // namespace crest::proxy
