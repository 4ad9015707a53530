#pragma once
// What an exchange needs from the client it serves: where its response goes
// and how the client's side of it ends. The HTTP/1 connection implements it
// for the one exchange it serves at a time (an HTTP/2 stream will, for its
// own). The client keeps what belongs to its protocol: the socket and TLS,
// reading and parsing, the request body it feeds into the exchange
// (Exchange::request_body, up to kWindowBytes waiting), framing, keep-alive,
// pipelining order, closing, and its timers.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "cache/response_cache.h"
#include "http/body_encoder.h"
#include "http/http_message.h"
#include "io/socket_io.h"
#include "observe/metrics.h"
#include "proxy/local_answer.h"

namespace crest::proxy {

// Per-direction window: reading from one side stops while this much waits
// for the other side, which bounds a slow peer's cost.
constexpr size_t kWindowBytes = 256 * 1024;

// One client address, in the forms its users need.
struct ClientAddress {
  sockaddr_storage address{};  // for trusted_proxies and access lists
  std::string ip;              // X-Forwarded-For, the access log
  uint64_t hash = 0;           // ip_hash, sticky: client_ip, rate limits by client_ip
  void set(const sockaddr_storage& a) {
    address = a;
    ip = io::addressText(a);
    hash = io::addressHash(a);
  }
};

// Who the client is: for forwarding headers, request keys and the log.
struct ClientInfo {
  // The connection's client: the PROXY protocol's source address, else the
  // peer. A request may name another through trusted X-Forwarded-For
  // (Exchange::clientAddress).
  ClientAddress peer;
  bool tls = false;
  observe::ListenerCells* listener_metrics = nullptr;  // of the listener it came in on
  const std::string& listener() const { return listener_metrics->listener; }
};

class ExchangeClient {
 public:
  virtual ~ExchangeClient() = default;

  // A server's response head, with `extras` (complete header lines the
  // stages add); its body goes to the returned encoder.
  virtual http::BodyEncoder sendResponseHead(const http::MessageHead& response,
                                             std::string_view extras) = 0;
  // A response from the cache: `lines` are its stored header lines; the
  // body (entry's) is sent when `with_body`.
  virtual void sendStoredResponse(int status, std::string_view reason, std::string_view lines,
                                  std::shared_ptr<const cache::StoredResponse> entry,
                                  bool with_body, std::string_view extras) = 0;
  // A whole response the proxy makes itself, for `cause`.
  virtual void sendLocalResponse(LocalCause cause, int status, std::string_view content_type,
                                 std::string_view body, std::string_view extras) = 0;
  // The request expects 100-continue: its body may come.
  virtual void sendContinue() = 0;
  // Response bytes the client has not taken yet: the exchange stops reading
  // the server at kWindowBytes.
  virtual size_t unsentBytes() const = 0;

  // The exchange is over and recorded: the client goes on to its next request or closes.
  virtual void exchangeDone() = 0;
  // The exchange cannot go on (a response cut short, a request broken off):
  // the client's side of it ends at once.
  virtual void reset(LocalCause cause) = 0;

  // The exchange waits for a queue slot: at most `timeout`, then
  // Exchange::onWaitTimeout. waitOver: it is over, the client's own
  // deadlines apply again.
  virtual void waitFor(std::chrono::milliseconds timeout) = 0;
  virtual void waitOver() = 0;
  // Something outside the client's own events moved the exchange (a server's
  // bytes, a queue's decision): the client runs it. May end the client and
  // recycle the exchange: the caller returns right after.
  virtual void wake() = 0;
};

}  // namespace crest::proxy
