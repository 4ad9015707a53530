#pragma once
// One HTTP/1 client connection: the socket and TLS, reading and parsing
// requests, feeding each request's body to its exchange, writing the
// responses, keep-alive, lingering close and the client's timers. Requests
// are served one at a time in arrival order, so pipelined responses keep
// their order; the exchange in flight does the rest (routing, the stages,
// the server) and reaches the connection through ExchangeClient. Every event
// entry point ends in pump(), which moves bytes until nothing more can move:
// with edge-triggered events no readiness is ever left unused. The socket,
// reading and the session live in downstream_connection.cc; the HTTP/1 side
// of the exchange (request checks, body, responses) in downstream_exchange.cc.
// Worker-thread only.

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include <chrono>
#include <memory>
#include <string>

#include "http/http_message.h"
#include "io/deadline_timer.h"
#include "proxy/exchange_client.h"
#include "proxy/http2_session.h"
#include "proxy/local_answer.h"
#include "proxy/runtime.h"

namespace crest::proxy {

class WorkerContext;
class Exchange;

class DownstreamConnection final : public ExchangeClient, public Http2Carrier {
 public:
  // Takes ownership of `ssl` (null for plain HTTP), already bound to `fd`.
  // `listener_metrics` name the listener it was accepted on.
  DownstreamConnection(WorkerContext& worker, int fd, const sockaddr_storage& peer,
                       observe::ListenerCells* listener_metrics, SSL* ssl);
  ~DownstreamConnection() override;
  DownstreamConnection(const DownstreamConnection&) = delete;
  DownstreamConnection& operator=(const DownstreamConnection&) = delete;

  void start();
  // Shutdown: an idle keep-alive connection closes now; any other after its
  // next response, so that a client that has just connected, and cannot
  // expect a close before any answer, is still served once.
  void drain();
  // Closes at once, whatever is in flight (drain time is up).
  void abort();
  const std::string& listener() const { return client_.listener(); }

  // ExchangeClient
  http::BodyEncoder sendResponseHead(const http::MessageHead& response,
                                     std::string_view extras) override;
  void sendStoredResponse(int status, std::string_view reason, std::string_view lines,
                          std::shared_ptr<const cache::StoredResponse> entry, bool with_body,
                          std::string_view extras) override;
  void sendLocalResponse(LocalCause cause, int status, std::string_view content_type,
                         std::string_view body, std::string_view extras) override;
  void sendContinue() override;
  // Bytes for the client not yet sent: a waiting response head and out_.
  size_t unsentBytes() const override;
  void exchangeDone() override;
  void reset(LocalCause cause) override { closeNow(cause); }
  void waitFor(std::chrono::milliseconds timeout) override;
  void waitOver() override;
  void wake() override { pump(); }

  // Http2Carrier
  // Deferred to the end of the loop turn: the streams' servers that answer
  // in one turn are run, and their bytes written, in one pump.
  void wakeConnection() override;
  const ClientInfo& clientInfo() const override { return client_; }
  const Runtime& runtime() const override { return *runtime_; }
  const ListenerRuntime* listenerRuntime() const override { return listener_; }

 private:
  // Http2: the connection speaks HTTP/2 (h2_), from its first byte on.
  enum class Phase { AwaitingRequest, Proxying, Http2, Closing, Lingering, Closed };

  // The client buffers exist only while they hold bytes or a request is
  // being served (see pump).
  static size_t bufferedBytes(const evbuffer* buffer) {
    return buffer != nullptr ? evbuffer_get_length(buffer) : 0;
  }
  static void onEvent(evutil_socket_t fd, short what, void* arg);
  static void onTimer(evutil_socket_t fd, short what, void* arg);

  // Runs the connection until no progress is possible; may destroy `this`
  // (the caller must return right after).
  void pump();
  // TLS: drives the handshake; false while it is not done (or failed).
  bool handshake();
  // proxy_protocol: takes the PROXY header off the socket's first bytes
  // (peeked, so that TLS still reads its ClientHello from the socket);
  // false while it is incomplete, or when it was refused (closed).
  bool readProxyHeader();
  // The client is known: counted against max_connections_per_client, or
  // closed at once when over it.
  bool admitClient();
  // The client sent a whole request and nothing after it that we know of:
  // closing cannot reset a response it has yet to read, so no lingering
  // (NGINX lingers only in the same cases).
  bool clientDone() const;
  // `unparsed`: see pump.
  bool readClient(std::string_view& unparsed);
  bool flushClient();
  bool parseRequestHead(std::string_view& unparsed);
  // A plain connection's first bytes: the HTTP/2 preface (h2c) switches it
  // to HTTP/2; a part of it waits for the rest. False for anything else.
  bool detectPreface(std::string_view& unparsed);
  void startHttp2();
  bool pumpHttp2();
  // A request head has begun to arrive (and is not yet complete or refused).
  bool requestStarted() const;
  // Feeds the request body to the exchange, up to its window.
  bool forwardRequestBody();
  // The request head is parsed: checks what is HTTP/1's to check, then the exchange routes it.
  void startExchange();
  // Whether the connection closes after a response the proxy makes itself for `cause`.
  bool closesAfterLocal(LocalCause cause);
  // Releases the exchange and gives it to the worker for a later request.
  void giveBackExchange();
  // `cause`: why the exchange in flight ends here, for the access log.
  void closeNow(LocalCause cause = LocalCause::None);

  WorkerContext& worker_;
  int fd_;
  event* event_;

  // Null on an idle connection once empty: given back to the worker.
  evbuffer* in_ = nullptr;
  evbuffer* out_ = nullptr;
  ClientInfo client_;
  SSL* ssl_;
  io::DeadlineTimer timer_;
  std::shared_ptr<const Runtime> runtime_;
  const ListenerRuntime* listener_ = nullptr;
  Phase phase_ = Phase::AwaitingRequest;
  bool handshake_done_;

  // A plain socket's first read waits for its first EPOLLIN (epoll reports
  // data that came before the socket was added): reading at once, on the
  // EPOLLOUT every new socket reports, mostly said EAGAIN (0.84 calls per new
  // connection under load). A TLS one reads once its handshake is done, as
  // OpenSSL may have taken the first request in with the handshake's last read.
  bool client_readable_;
  bool client_closing_ = false;  // the client's FIN was reported: read to the end
  bool client_eof_ = false;
  bool client_error_ = false;
  bool client_reads_large_ = false;  // readInto's record of the last read
  bool close_after_response_ = false;
  bool served_one_ = false;    // a response was completed: a client reusing it may see a close
  bool wake_pending_ = false;  // wakeConnection() made the event active
  bool awaiting_proxy_header_ = false;
  bool client_counted_ = false;  // in the worker's per-client connection count
  std::chrono::steady_clock::time_point client_activity_;

  // The request being served, from its first byte until the connection
  // goes idle again (pump() lets it go).
  std::unique_ptr<Exchange> exchange_;
  // An HTTP/2 connection's session, which holds the streams' exchanges.
  std::unique_ptr<Http2Session> h2_;
};

}  // namespace crest::proxy
