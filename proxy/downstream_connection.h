#pragma once
// One client connection and the exchange in flight on it: request parsing,
// routing, the upstream connection, and the response streamed back. Requests
// are served one at a time in arrival order, so pipelined responses keep
// their order. Every event entry point ends in pump(), which moves bytes
// until nothing more can move: with edge-triggered events no readiness is
// ever left unused. Worker-thread only.

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include <chrono>
#include <memory>
#include <string>

#include "http/http_message.h"
#include "io/deadline_timer.h"
#include "proxy/local_answer.h"
#include "proxy/runtime.h"
#include "proxy/upstream_connection.h"

namespace crest::proxy {

class WorkerContext;
class Waiter;
struct Exchange;

class DownstreamConnection : public UpstreamConnection::Handler {
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
  const std::string& listener() const { return listener_metrics_->listener; }

  void onUpstreamEvent() override;
  void onUpstreamTimeout() override;
  // The pool's admission queue has decided about `waiter` (granted a slot or
  // shed it); ignored unless it is this connection's current wait.
  void onAdmissionDecided(const Waiter& waiter, limits::AdmissionTicket::State state);
  // Another request's fill of the cache entry this request waits for ended.
  void onFillDone(const Waiter& waiter);

 private:
  enum class Phase { AwaitingRequest, Proxying, Closing, Lingering, Closed };
  enum class UpstreamFailure { Connect, Broken, Timeout, Invalid };

  static void onEvent(evutil_socket_t fd, short what, void* arg);
  static void onTimer(evutil_socket_t fd, short what, void* arg);

  // Runs the connection until no progress is possible; may destroy `this`
  // (the caller must return right after).
  void pump();
  // TLS: drives the handshake; false while it is not done (or failed).
  bool handshake();
  // The client sent a whole request and nothing after it that we know of:
  // closing cannot reset a response it has yet to read, so no lingering
  // (NGINX lingers only in the same cases).
  bool clientDone() const;
  // `unparsed`: see pump.
  bool readClient(std::string_view& unparsed);
  bool flushClient();
  bool parseRequestHead(std::string_view& unparsed);
  // A request head has begun to arrive (and is not yet complete or refused).
  bool requestStarted() const;
  // Bytes for the client not yet sent: a waiting response head and out_.
  size_t unsentBytes() const;
  bool forwardRequestBody();
  bool driveUpstream();

  void startExchange();
  // False when the route's rate limit refused the request (answered 429).
  bool checkRateLimit(const RouteTarget& target, const http::MessageHead& head);
  // Takes or waits for a slot of pool_; false when the request waits or was shed.
  bool admit();
  // The queue's decision, or Waiting when the wait timed out.
  void settleWait(limits::AdmissionTicket::State state);
  // Gives back the pool slot this exchange holds, or leaves the queue.
  void endAdmission();
  // Sends the admitted request on: its head to a server, its body after.
  void forwardToPool();
  // After the route's rate limit: the cache, admission, the pool.
  void routeToPool();
  // Cached routes: true when answered from the cache or waiting for a fill.
  bool answerFromCache();
  // Answers from a stored response (a HIT may become a 304).
  void serveStored(std::shared_ptr<const cache::StoredResponse> entry, observe::CacheResult result);
  // Answers with stale_ when it is still within its stale time.
  bool serveStale();
  // Decides at the response head whether it will be stored (pending_store_).
  void prepareStore(const http::MessageHead& response);
  // Stores the completed response when prepared; ends a fill this request leads.
  void finishStore();
  // Drops a response being stored, and its body so far; ends a fill this request leads.
  void dropStore();
  void endCacheFill();
  // Lines added to every response of the route: RateLimit-*, X-Cache.
  std::string responseExtras() const;
  // The bookkeeping shared by every answer the proxy makes itself.
  void finishLocalAnswer(int status, uint64_t body_bytes);
  // Answers with the route's fallback, else 503, instead of the pool.
  void shed(observe::ShedReason reason, std::string_view why);
  // The pool for this request: the route's, or its split's choice for split_key_.
  const PoolRuntime* choosePool(const RouteTarget& target);
  // A hash of the request's key (client address, header or cookie; random for none).
  uint64_t keyHash(const conf::RequestKey& key, const http::MessageHead& head);
  void writeRequestHead();
  void dispatch();
  // The server's answer breaks HTTP: 502 when nothing was sent yet, else a close.
  void invalidResponse(std::string_view why);
  void onResponseHead();
  void onResponseComplete();
  void onUpstreamFailure(UpstreamFailure failure);
  void releaseServer();
  // Lets go of what the exchange holds outside this connection: the server's
  // active count, the upstream connection, the pool slot or queue place, and
  // a cache fill others may be waiting for.
  void releaseExchange();
  // Releases the exchange and gives it to the worker for a later request.
  void giveBackExchange();
  void finishExchange();
  // Counts the exchange that just ended in the request metrics (once).
  void recordExchange();
  // A response the proxy makes itself, for `cause`: one line of text; closes
  // after it when the request cannot be continued on this connection.
  void respond(LocalCause cause, std::string_view message, std::string_view extra_headers = {});
  // The same with the status and body given (a route's fallback, 429).
  void respondWith(LocalCause cause, int status, std::string_view content_type,
                   std::string_view body, std::string_view extra_headers);

  // `cause`: why the exchange in flight ends here, for the access log.
  void closeNow(LocalCause cause = LocalCause::None);

  WorkerContext& worker_;
  int fd_;
  event* event_;

  // Null on an idle connection once empty: given back to the worker.
  evbuffer* in_ = nullptr;
  evbuffer* out_ = nullptr;
  std::string peer_ip_;
  uint64_t client_hash_;
  observe::ListenerCells* listener_metrics_;
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
  bool served_one_ = false;  // a response was completed: a client reusing it may see a close
  std::chrono::steady_clock::time_point client_activity_;

  // The request being served, from its first byte until the connection
  // goes idle again (pump() lets it go).
  std::unique_ptr<Exchange> exchange_;
};

}  // namespace crest::proxy
