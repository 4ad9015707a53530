#pragma once
// The process: opens listeners, runs the workers and the main thread's loop
// (admin endpoints, signals, reloads) and stops gracefully. Main thread only.

#include <event2/event.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "conf/config.h"
#include "health/health_checker.h"
#include "health/http_prober.h"
#include "health/libevent_dispatcher.h"
#include "observe/access_log.h"
#include "observe/admin_server.h"
#include "proxy/runtime.h"
#include "proxy/runtime_status.h"
#include "server/health_reporter.h"
#include "server/service_discovery.h"
#include "server/worker.h"

namespace crest::server {

class Server {
 public:
  explicit Server(std::string config_path) : config_path_(std::move(config_path)) {}
  ~Server();

  // Serves `runtime` until SIGTERM/SIGINT; returns the process exit code
  // (0 after a clean stop, 3 when a listener cannot be bound).
  // `on_started` runs once every socket is bound and the workers run.
  int run(std::shared_ptr<const proxy::Runtime> runtime, std::function<void()> on_started = {});

  // The metrics every proxy::Runtime of this process counts into.
  observe::Metrics& metrics() { return metrics_; }
  // The session ticket keys every TLS listener of this process shares.
  const std::shared_ptr<tls::TicketKeys>& ticketKeys() const { return ticket_keys_; }

 private:
  static void onSignal(evutil_socket_t sig, short what, void* arg);
  static void onShutdownTimeout(evutil_socket_t fd, short what, void* arg);
  static void onWorkerExit(evutil_socket_t fd, short what, void* arg);
  static void onRotateTicketKeys(evutil_socket_t fd, short what, void* arg);
  void reload();
  // DNS changed a pool's servers: the runtime is rebuilt on the same
  // configuration and published as a reload would be.
  void applyDiscovered();
  // Binds one socket per worker for `listener`, appending to out[worker];
  // false with `error` (and nothing left open) on failure, which includes
  // another process listening on the address.
  bool bindListener(const conf::Listener& listener, std::vector<std::vector<ListenSocket>>& out,
                    std::string& error);
  // A reload that renames a listener on the same address: the new name gets
  // duplicates of the old name's sockets, so that the connections waiting in
  // their accept queues are not reset when the old name's sockets close.
  void adoptListener(const conf::Listener& listener, const std::string& old_name,
                     std::vector<std::vector<ListenSocket>>& out);
  // Notes the sockets handed to the workers (out[worker]), by listener name.
  void recordListenSockets(const std::vector<std::vector<ListenSocket>>& sockets);
  void reopenAccessLog();
  // Follows a reload's access_log path (on/off changes need a restart).
  void applyAccessLogPath(const std::string& path);
  void beginShutdown();
  uint32_t workerCount() const;

  std::string config_path_;
  event_base* base_ = nullptr;
  std::shared_ptr<const proxy::Runtime> runtime_;
  std::vector<std::unique_ptr<Worker>> workers_;
  // Each listener's sockets, one per worker in worker order; owned by the workers.
  std::unordered_map<std::string, std::vector<int>> listen_fds_;
  std::unique_ptr<observe::AdminServer> admin_;
  std::unique_ptr<observe::AccessLogFile> access_log_;
  std::unique_ptr<health::LibeventDispatcher> dispatcher_;
  std::unique_ptr<health::HttpProber> prober_;
  observe::Metrics metrics_;
  proxy::ConnectionBudget connection_budget_;
  // limits.max_connections, or half the open-files limit when it is 0 (auto).
  void applyConnectionLimit(const conf::Config& config);
  std::shared_ptr<tls::TicketKeys> ticket_keys_ = std::make_shared<tls::TicketKeys>();
  HealthReporter health_reporter_{metrics_};
  std::unique_ptr<health::HealthChecker> health_checker_;
  std::unique_ptr<ServiceDiscovery> discovery_;
  std::vector<event*> events_;
  event* shutdown_timer_ = nullptr;
  event* worker_exit_ = nullptr;
  std::atomic<int> workers_running_{0};
  proxy::ReloadStatus reload_status_;
  bool stopping_ = false;
};

}  // namespace crest::server
