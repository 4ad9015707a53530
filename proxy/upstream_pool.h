#pragma once
// Per-worker keep-alive connections to servers. Idle connections are reused
// most-recent first (the least likely to have been closed by the server).
// Worker-thread only.

#include <event2/event.h>

#include <memory>
#include <unordered_map>
#include <vector>

#include "proxy/runtime.h"
#include "proxy/upstream_connection.h"

namespace crest::proxy {

class UpstreamPool {
 public:
  explicit UpstreamPool(io::EventLoop& loop) : loop_(loop) {}
  ~UpstreamPool();

  // An idle connection to `server` (unless `fresh`), or a new one being
  // connected (null when the connect failed at once; the error is then in
  // `connect_errno`).
  std::unique_ptr<UpstreamConnection> acquire(const std::shared_ptr<UpstreamServer>& server,
                                              const conf::UpstreamTimeouts& timeouts, bool fresh,
                                              int& connect_errno);
  // Keeps a connection whose last exchange ended cleanly, for reuse.
  void release(std::unique_ptr<UpstreamConnection> conn, std::chrono::milliseconds idle_timeout);
  // An idle connection closed or timed out: forget and destroy it.
  void discard(UpstreamConnection* conn);
  // Closes every idle connection (shutdown).
  void clear();
  io::EventLoop& loop() { return loop_; }

 private:
  io::EventLoop& loop_;
  std::unordered_map<const UpstreamServer*, std::vector<std::unique_ptr<UpstreamConnection>>> idle_;
};

}  // namespace crest::proxy
