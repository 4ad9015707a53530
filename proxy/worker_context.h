#pragma once
// What a worker thread's connections share and need from it: the event loop,
// the configuration for new requests, the upstream pool, the spare exchanges
// and buffers that keep a keep-alive request free of allocations, the access
// log writer, request ids, and the registry of open client connections. The
// thread, its acceptors and its busy poll are server::Worker's, which owns one
// of these. Worker-thread only, except post().

#include <event2/buffer.h>
#include <event2/event.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "io/block_pool.h"
#include "io/event_loop.h"
#include "io/socket_io.h"
#include "io/spare_list.h"
#include "io/tls_io.h"
#include "limits/client_connections.h"
#include "observe/access_log.h"
#include "proxy/cluster_client.h"
#include "proxy/exchange.h"
#include "proxy/mirror_copy.h"
#include "proxy/runtime.h"
#include "proxy/stage.h"
#include "proxy/upstream_pool.h"

namespace crest::proxy {

class DownstreamConnection;

// Client connections open across all workers, against limits.max_connections.
struct ConnectionBudget {
  std::atomic<int64_t> open{0};
  std::atomic<int64_t> limit{0};
  // Counts a new connection; false (and nothing counted) when the limit is reached.
  bool take() {
    if (open.fetch_add(1, std::memory_order_relaxed) < limit.load(std::memory_order_relaxed))
      return true;
    open.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  void give() { open.fetch_sub(1, std::memory_order_relaxed); }
  // limits.max_connections_per_client's count, by client address hash.
  limits::ClientConnections per_client;
};

class WorkerContext final : public ExchangeContext {
 public:
  // `access_log_fd` < 0: no access log.
  WorkerContext(std::shared_ptr<const Runtime> runtime, int access_log_fd,
                ConnectionBudget& budget);
  // Closes the connections still open.
  ~WorkerContext();
  WorkerContext(const WorkerContext&) = delete;
  WorkerContext& operator=(const WorkerContext&) = delete;

  // Runs `task` on this worker's loop. Any thread.
  void post(std::function<void()> task) override;

  io::EventLoop& loop() { return loop_; }
  // The time of this loop turn, for the worker's connections.
  io::LoopClock& clock() { return loop_.clock(); }
  std::chrono::steady_clock::time_point now() override { return loop_.clock().now(); }
  int64_t nanos() override {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  UpstreamPool& upstreamPool() { return upstream_pool_; }
  std::unique_ptr<UpstreamConnection> connectTo(const std::shared_ptr<UpstreamServer>& server,
                                                const conf::UpstreamTimeouts& timeouts, bool fresh,
                                                int& connect_errno) override {
    return upstream_pool_.acquire(server, timeouts, fresh, connect_errno);
  }
  void keepIdle(std::unique_ptr<UpstreamConnection> connection,
                std::chrono::milliseconds idle_timeout) override {
    upstream_pool_.release(std::move(connection), idle_timeout);
  }
  const std::shared_ptr<const Runtime>& runtime() const { return runtime_; }
  // For requests that start from now on.
  // Also connects to (or leaves) cluster.redis as the configuration says,
  // so that the first request finds the connection made.
  void setRuntime(std::shared_ptr<const Runtime> runtime) {
    runtime_ = std::move(runtime);
    cluster();
  }

  // Takes in an accepted connection: it belongs to this worker until closed.
  void adopt(DownstreamConnection* conn);
  // Connections accepted on listener `name` (all when `name` is null).
  std::vector<DownstreamConnection*> connectionsOf(const std::string* name) const;
  bool isOpen(DownstreamConnection* conn) const { return connections_.count(conn) != 0; }
  // Deletes a connection that has closed, and gives back its budget.
  void connectionClosed(DownstreamConnection* conn);
  // Open connections per client, shared by the workers.
  limits::ClientConnections& clientConnections() { return budget_.per_client; }
  // From now on the loop ends once no connection is left (graceful stop).
  void beginDraining();
  bool draining() const { return draining_; }

  // An exchange for a request about to start: a spare one when there is.
  std::unique_ptr<Exchange> takeExchange(http::ParserLimits request_limits);
  // Takes back the finished exchange of a connection gone idle or closed
  // (released of everything it held), keeping a few spares.
  void recycleExchange(std::unique_ptr<Exchange> exchange);
  // An empty buffer, and one given back (emptied here): like exchanges, the
  // buffers of idle and closed connections wait here for the next requests.
  evbuffer* takeBuffer();
  void recycleBuffer(evbuffer* buffer);
  // Where this worker's connections read small pieces (beginRead).
  io::ReadScratch& readScratch() override { return read_scratch_; }
  io::TlsScratch& tlsScratch() { return tls_scratch_; }
  // nghttp2's memory for this worker's HTTP/2 sessions (Http2Session).
  io::BlockPool& http2Blocks() { return http2_blocks_; }
  // Writes a fresh X-Request-Id, 32 hex digits, over `id`: in the memory of
  // the recycled exchange's last one, where a new string would allocate.
  void newRequestId(std::string& id) override;
  uint64_t random() override { return random_(); }
  // Null when access logging is off.
  observe::AccessLogWriter* accessLog() override { return access_log_.get(); }
  // Made with the runtime, and again when a reload changes the cluster section.
  ClusterClient* cluster() override;
  void mirror(std::shared_ptr<UpstreamServer> server, const conf::UpstreamTimeouts& timeouts,
              std::string request, observe::PoolCells* cells) override;

  // A connection was served an event: the busy poll's window starts again.
  void noteActivity() { ++activity_; }
  // Events served so far, for the busy poll.
  uint64_t activity() const { return activity_; }

 private:
  static void onTasks(evutil_socket_t fd, short what, void* arg);
  void runTasks();
  void exitWhenEmpty();

  io::EventLoop loop_;  // first: what follows frees its events on it
  std::shared_ptr<const Runtime> runtime_;
  UpstreamPool upstream_pool_;
  std::unordered_set<DownstreamConnection*> connections_;
  event* tasks_event_;
  std::mutex tasks_mutex_;
  std::vector<std::function<void()>> tasks_;
  bool draining_ = false;
  ConnectionBudget& budget_;
  std::mt19937_64 random_;
  std::unique_ptr<observe::AccessLogWriter> access_log_;
  std::unique_ptr<ClusterClient> cluster_;
  // Copies on their way to mirror pools; the worker ends what is left.
  std::unordered_map<MirrorCopy*, std::unique_ptr<MirrorCopy>> mirrors_;
  // Enough for the requests that start and end within one loop pass. An
  // HTTP/2 client ends up to max_concurrent_streams (128 by default) in one
  // pass, and each stream holds two buffers besides its exchange's two: with
  // 64 and 128 spares, h2load -c16 -m10 built 27% of its exchanges anew
  // (900 instructions a request over HTTP/2).
  io::SpareList<Exchange, deleteExchange, 256> spare_exchanges_;
  io::SpareList<evbuffer, evbuffer_free, 1024> spare_buffers_;
  io::ReadScratch read_scratch_;
  io::TlsScratch tls_scratch_;
  io::BlockPool http2_blocks_;
  uint64_t activity_ = 0;
};

}  // namespace crest::proxy
