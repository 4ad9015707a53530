#pragma once
// One event-loop thread: its own event_base, its own SO_REUSEPORT listening
// socket per listener, its downstream connections and its upstream pool.
// Other threads talk to it only through post(), which runs a task on its loop.

#include <event2/buffer.h>
#include <event2/event.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "observe/access_log.h"
#include "io/event_loop.h"
#include "proxy/exchange.h"
#include "proxy/runtime.h"
#include "io/socket_io.h"
#include "io/spare_list.h"
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
};

struct ListenSocket {
  std::string listener;  // listener name
  int fd = -1;
  observe::ListenerCells* metrics = nullptr;
};

class Worker {
 public:
  // `access_log_fd` < 0: no access log.
  Worker(std::shared_ptr<const Runtime> runtime, std::vector<ListenSocket> sockets,
         int access_log_fd, ConnectionBudget& budget);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void start();
  void join();

  // Runs `task` on this worker's loop. Any thread.
  void post(std::function<void()> task);
  // Stops accepting, closes idle connections, lets busy ones finish their
  // request and exits the loop when none is left. Any thread.
  void beginShutdown();
  // Ends the loop now, whatever is in flight. Any thread.
  void forceStop();

  // Adopts a new configuration for requests that start from now on, with the
  // listening sockets of listeners it adds, and drops the listeners it removes
  // (their connections finish their request, within `drain_timeout`). Any thread.
  void setRuntime(std::shared_ptr<const Runtime> runtime, std::vector<ListenSocket> added = {},
                  std::vector<std::string> removed = {},
                  std::chrono::milliseconds drain_timeout = std::chrono::milliseconds(0));
  // Called on the worker thread when its loop has ended. Set before start().
  void onExit(std::function<void()> callback) { on_exit_ = std::move(callback); }

  // Worker-thread only below.
  io::EventLoop& loop() { return loop_; }
  // The time of this loop turn, for the worker's connections.
  io::LoopClock& clock() { return loop_.clock(); }
  UpstreamPool& upstreamPool() { return upstream_pool_; }
  const std::shared_ptr<const Runtime>& runtime() const { return runtime_; }
  bool draining() const { return draining_; }
  // Connections accepted on listener `name`.
  std::vector<DownstreamConnection*> connectionsOf(const std::string& name) const;
  void connectionClosed(DownstreamConnection* conn);
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
  io::ReadScratch& readScratch() { return read_scratch_; }
  // Writes a fresh X-Request-Id, 32 hex digits, over `id`: in the memory of
  // the recycled exchange's last one, where a new string would allocate.
  void newRequestId(std::string& id);
  uint64_t random() { return random_(); }
  // Null when access logging is off.
  observe::AccessLogWriter* accessLog() { return access_log_.get(); }

  // A connection was served an event: the busy poll's window starts again.
  void noteActivity() { ++activity_; }

 private:
  struct Acceptor {
    Worker* worker;
    std::string listener;
    int fd;
    observe::ListenerCells* metrics;
    event* ev;
  };
  // Closes what a removed listener still has open when its drain time is up.
  struct DrainTimer {
    Worker* worker;
    std::string listener;
    event* ev;
  };
  static void onDrainDeadline(evutil_socket_t fd, short what, void* arg);
  static void onAccept(evutil_socket_t fd, short what, void* arg);
  // Accepts up to `max` connections waiting on the acceptor's socket.
  void acceptFrom(Acceptor& acceptor, int max);
  // Stops watching the acceptor's socket and closes it: from then on the
  // kernel refuses new connections to it (or sends them to the other
  // workers' sockets of the listener while those are open).
  static void closeAcceptor(Acceptor& acceptor);
  void addAcceptor(const ListenSocket& socket);
  void removeListener(const std::string& name, std::chrono::milliseconds drain_timeout);
  static void onTasks(evutil_socket_t fd, short what, void* arg);
  void runTasks();
  void maybeExit();
  // The event loop, with the busy poll between events (proxy/busy_poll.h).
  void run();

  io::EventLoop loop_;  // first: what follows frees its events on it
  std::shared_ptr<const Runtime> runtime_;
  std::vector<std::unique_ptr<Acceptor>> acceptors_;
  std::vector<std::unique_ptr<DrainTimer>> drain_timers_;
  UpstreamPool upstream_pool_;
  std::unordered_set<DownstreamConnection*> connections_;
  event* tasks_event_;
  std::mutex tasks_mutex_;
  std::vector<std::function<void()>> tasks_;
  std::thread thread_;
  bool draining_ = false;
  ConnectionBudget& budget_;
  std::function<void()> on_exit_;
  std::mt19937_64 random_;
  std::unique_ptr<observe::AccessLogWriter> access_log_;
  // Enough for the requests that start and end within one loop pass.
  io::SpareList<Exchange, deleteExchange, 64> spare_exchanges_;
  io::SpareList<evbuffer, evbuffer_free, 128> spare_buffers_;  // two per exchange
  io::ReadScratch read_scratch_;
  uint64_t activity_ = 0;
};

}  // namespace crest::proxy
