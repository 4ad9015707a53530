#pragma once
// One event-loop thread: its WorkerContext (event loop, connections, upstream
// pool), its own SO_REUSEPORT listening socket per listener, and the loop
// that runs them with the busy poll between events. Other threads talk to it
// only through its methods, which run their work on its loop.

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "observe/metrics.h"
#include "proxy/runtime.h"
#include "proxy/worker_context.h"

namespace crest::server {

struct ListenSocket {
  std::string listener;  // listener name
  int fd = -1;
  observe::ListenerCells* metrics = nullptr;
};

class Worker {
 public:
  // `access_log_fd` < 0: no access log.
  Worker(std::shared_ptr<const proxy::Runtime> runtime, std::vector<ListenSocket> sockets,
         int access_log_fd, proxy::ConnectionBudget& budget);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void start();
  void join();

  // Closes the listening sockets, closes idle connections, lets busy ones
  // finish their request and exits the loop when none is left. Any thread.
  void beginShutdown();
  // Ends the loop now, whatever is in flight. Any thread.
  void forceStop();

  // Adopts a new configuration for requests that start from now on, with the
  // listening sockets of listeners it adds, and drops the listeners it removes
  // (their connections finish their request, within `drain_timeout`). Any thread.
  void setRuntime(std::shared_ptr<const proxy::Runtime> runtime,
                  std::vector<ListenSocket> added = {}, std::vector<std::string> removed = {},
                  std::chrono::milliseconds drain_timeout = std::chrono::milliseconds(0));
  // Called on the worker thread when its loop has ended. Set before start().
  void onExit(std::function<void()> callback) { on_exit_ = std::move(callback); }

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
  // The event loop, with the busy poll between events (io/busy_poll.h).
  void run();

  proxy::WorkerContext context_;  // first: what follows frees its events on its loop
  std::vector<std::unique_ptr<Acceptor>> acceptors_;
  std::vector<std::unique_ptr<DrainTimer>> drain_timers_;
  std::thread thread_;
  proxy::ConnectionBudget& budget_;
  std::function<void()> on_exit_;
};

}  // namespace crest::server
