#pragma once
// One connection to a server, on a raw edge-triggered event. It only moves
// bytes and watches time; the HTTP exchange over it belongs to the
// Exchange that holds it (its Handler). Between requests it rests
// in the worker's UpstreamPool with its read event armed, so a server that
// closes an idle connection is noticed before the connection is reused.
// Worker-thread only.

#include <event2/buffer.h>
#include <event2/event.h>

#include <chrono>
#include <memory>

#include "io/deadline_timer.h"
#include "io/socket_io.h"
#include "proxy/runtime.h"

namespace crest::proxy {

class UpstreamPool;

class UpstreamConnection {
 public:
  class Handler {
   public:
    virtual ~Handler() = default;
    // Something happened on the connection (readable, writable, connected, failed).
    virtual void onUpstreamEvent() = 0;
    // The connect or response timeout passed.
    virtual void onUpstreamTimeout() = 0;
  };

  enum class State { Connecting, Connected, Failed };

  UpstreamConnection(UpstreamPool& pool, std::shared_ptr<UpstreamServer> server);
  ~UpstreamConnection();
  UpstreamConnection(const UpstreamConnection&) = delete;
  UpstreamConnection& operator=(const UpstreamConnection&) = delete;

  // Starts a non-blocking connect; false when it failed at once.
  bool connect(std::chrono::milliseconds timeout);
  void attach(Handler* handler) { handler_ = handler; }

  // Sends what it can of `head`, then of `body`; false when the connection broke.
  bool flush(std::string& head, evbuffer* body);
  // Reads what the socket has, up to `cap` buffered bytes (small reads
  // through the worker's `scratch`; with `kept`, one may stay there: readInto).
  void pullInput(size_t cap, io::ReadScratch& scratch, std::string_view* kept = nullptr);

  // Restarts the response clock: time to the next byte from the server.
  void expectResponseWithin(std::chrono::milliseconds timeout);
  // Bytes went to the server: for a tunnel, whose clock runs while no byte
  // moves either way, that restarts it too.
  void noteActivity();
  void stopTimer();

  // Called by the pool: rests idle, closed by the server or after `idle_timeout`.
  void parkIdle(std::chrono::milliseconds idle_timeout);
  // Called by the pool when it hands the connection out again.
  void unpark();

  State state() const { return state_; }
  bool connected() const { return state_ == State::Connected; }
  int connectError() const { return connect_errno_; }
  bool reused() const { return requests_ > 0; }
  void countRequest() { ++requests_; }
  bool peerClosed() const { return peer_closed_; }
  bool broken() const { return broken_; }
  evbuffer* input() { return in_; }
  UpstreamServer& server() { return *server_; }
  const std::shared_ptr<UpstreamServer>& serverPtr() const { return server_; }

 private:
  static void onEvent(evutil_socket_t fd, short what, void* arg);
  static void onTimer(evutil_socket_t fd, short what, void* arg);
  void checkConnect();

  UpstreamPool& pool_;
  std::shared_ptr<UpstreamServer> server_;
  int fd_ = -1;
  event* event_ = nullptr;
  evbuffer* in_;
  io::DeadlineTimer timer_;
  Handler* handler_ = nullptr;
  State state_ = State::Connecting;
  int connect_errno_ = 0;
  uint64_t requests_ = 0;
  bool readable_ = true;  // edge seen and not yet drained
  bool closing_ = false;  // the server's FIN was reported: read to the end
  bool peer_closed_ = false;
  bool broken_ = false;
  bool reads_large_ = false;  // readInto's record of the last read
  bool idle_ = false;
  std::chrono::milliseconds response_timeout_{0};
  std::chrono::steady_clock::time_point last_activity_;
};

}  // namespace crest::proxy
