#include "server/server.h"

#include <event2/thread.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

#include "conf/loader.h"
#include "health/dispatcher.h"
#include "observe/log.h"

namespace crest::server {

using namespace io;
using namespace observe;

using health::toTimeval;
namespace {

std::string listNames(const char* what, const std::vector<std::string>& names) {
  if (names.empty()) return "";
  std::string out = std::string(what) + ":";
  for (const auto& n : names) out += " " + n;
  return out + "; ";
}

// The top-level settings a reload changes: those that apply at once, and
// those that wait for the next start.
void settingsChanged(const conf::Config& old, const conf::Config& next,
                     std::vector<std::string>& applied, std::vector<std::string>& at_restart) {
  auto note = [](std::vector<std::string>& list, bool changed, const char* name) {
    if (changed) list.push_back(name);
  };
  note(applied, old.shutdown_timeout != next.shutdown_timeout, "shutdown_timeout");
  note(applied, old.busy_poll != next.busy_poll, "busy_poll");
  note(applied, old.limits != next.limits, "limits");
  note(applied, old.timeouts != next.timeouts, "timeouts");
  note(applied, old.access_log != next.access_log, "access_log");
  note(applied, old.cache != next.cache, "cache");
  note(at_restart, old.workers != next.workers, "workers");
  note(at_restart, old.admin != next.admin, "admin");
}

// "listeners added: admin2; pools changed: api; routes changed" or "no change".
std::string describeChanges(const conf::Config& old, const conf::Config& next,
                            const std::vector<std::string>& added,
                            const std::vector<std::string>& removed) {
  std::vector<std::string> pools_added, pools_removed, pools_changed, tls_changed, http2_changed;
  for (const auto& p : next.pools) {
    const conf::Pool* before = old.findPool(p.name);
    if (!before) {
      pools_added.push_back(p.name);
    } else if (*before != p) {
      pools_changed.push_back(p.name);
    }
  }
  for (const auto& p : old.pools) {
    if (!next.findPool(p.name)) pools_removed.push_back(p.name);
  }
  bool routes_changed = false;
  for (const auto& l : next.listeners) {
    const conf::Listener* before = old.findListener(l.name, l.listen);
    if (before == nullptr) continue;
    routes_changed = routes_changed || before->routes != l.routes;
    if (before->tls != l.tls) tls_changed.push_back(l.name);
    if (before->http2 != l.http2) http2_changed.push_back(l.name);
  }
  std::vector<std::string> applied, at_restart;
  settingsChanged(old, next, applied, at_restart);
  std::string out =
      listNames("listeners added", added) + listNames("listeners removed", removed) +
      listNames("pools added", pools_added) + listNames("pools removed", pools_removed) +
      listNames("pools changed", pools_changed) + (routes_changed ? "routes changed; " : "") +
      listNames("tls changed", tls_changed) + listNames("http2 changed", http2_changed) +
      listNames("settings changed", applied) +
      listNames("unchanged until the next start", at_restart);
  if (out.empty()) return "no change";
  return out.substr(0, out.size() - 2);
}

}  // namespace

Server::~Server() {
  for (auto& w : workers_) {
    w->forceStop();
    w->join();
  }
  workers_.clear();
  admin_.reset();
  health_checker_.reset();
  prober_.reset();
  dispatcher_.reset();
  for (auto* e : events_) event_free(e);
  if (base_) event_base_free(base_);
}

uint32_t Server::workerCount() const {
  uint32_t n = runtime_->config().workers;
  if (n == 0) n = std::max(1u, std::thread::hardware_concurrency());
  return n;
}

bool Server::bindListener(const conf::Listener& listener,
                          std::vector<std::vector<ListenSocket>>& out, std::string& error) {
  SocketAddress addr;
  if (!resolveAddress(listener.listen, addr, error)) {
    error = "listener " + listener.name + ": " + error;
    return false;
  }
  if (addressTaken(addr)) {
    error = "listener " + listener.name + ": cannot listen on " + listener.listen.text +
            ": address already in use (is another crest running?)";
    return false;
  }
  std::vector<ListenSocket> bound;
  for (size_t w = 0; w < out.size(); ++w) {
    int fd = listenSocket(addr, true, error);
    if (fd < 0) {
      error =
          "listener " + listener.name + ": cannot listen on " + listener.listen.text + ": " + error;
      for (auto& s : bound) ::close(s.fd);
      return false;
    }
    bound.push_back(ListenSocket{listener.name, fd, metrics_.listenerCells(listener.name)});
  }
  for (size_t w = 0; w < out.size(); ++w) out[w].push_back(bound[w]);
  return true;
}

void Server::adoptListener(const conf::Listener& listener, const std::string& old_name,
                           std::vector<std::vector<ListenSocket>>& out) {
  const std::vector<int>& fds = listen_fds_.at(old_name);
  for (size_t w = 0; w < out.size(); ++w) {
    out[w].push_back(ListenSocket{listener.name, ::fcntl(fds[w], F_DUPFD_CLOEXEC, 0),
                                  metrics_.listenerCells(listener.name)});
  }
}

void Server::recordListenSockets(const std::vector<std::vector<ListenSocket>>& sockets) {
  for (const auto& list : sockets) {
    for (const auto& s : list) listen_fds_[s.listener].push_back(s.fd);
  }
}

namespace {

void closeSockets(std::vector<std::vector<ListenSocket>>& sockets) {
  for (auto& list : sockets) {
    for (auto& s : list) ::close(s.fd);
  }
}

}  // namespace

int Server::run(std::shared_ptr<const proxy::Runtime> runtime, std::function<void()> on_started) {
  evthread_use_pthreads();
  runtime_ = std::move(runtime);
  base_ = event_base_new();
  // Handled (at the loop's first turn) from before the first socket listens:
  // whoever sees the port open may signal, and SIGHUP's default would kill.
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGUSR1}) {
    event* e = evsignal_new(base_, sig, &Server::onSignal, this);
    event_add(e, nullptr);
    events_.push_back(e);
  }
  const conf::Config& cfg = runtime_->config();
  const uint32_t workers = workerCount();

  // Every socket is bound before any thread starts, so a taken port fails the start cleanly.
  std::vector<std::vector<ListenSocket>> sockets(workers);
  for (const auto& l : cfg.listeners) {
    std::string error;
    if (!bindListener(l, sockets, error)) {
      log::error(error);
      closeSockets(sockets);
      return 3;
    }
  }
  reload_status_ = proxy::ReloadStatus{log::nowUnixSeconds(), true};
  metrics_.setLiveSource([this] { return proxy::liveState(*runtime_); });
  metrics_.countReload(true, runtime_->generation(), reload_status_.time);
  if (cfg.admin.listen) {
    SocketAddress addr;
    std::string error;
    int fd = resolveAddress(*cfg.admin.listen, addr, error) ? listenSocket(addr, false, error) : -1;
    admin_ = std::make_unique<observe::AdminServer>(
        base_,
        observe::AdminHandlers{[this] { return metrics_.render(); },
                               [this] { return proxy::statusJson(*runtime_, reload_status_); },
                               [this](std::string_view host, std::string_view path) {
                                 return proxy::purgeCache(*runtime_, host, path);
                               }});
    if (fd < 0 || !admin_->serve(fd)) {
      log::error("admin: cannot listen on " + cfg.admin.listen->text + ": " + error);
      closeSockets(sockets);
      return 3;
    }
  }
  if (!cfg.access_log.empty()) {
    std::string error;
    access_log_ = observe::AccessLogFile::open(cfg.access_log, error);
    if (!access_log_) {
      log::error("access_log: " + error);
      closeSockets(sockets);
      return 3;
    }
  }
  applyConnectionLimit(cfg);
  worker_exit_ = event_new(base_, -1, EV_PERSIST, &Server::onWorkerExit, this);
  event_add(worker_exit_, nullptr);
  events_.push_back(worker_exit_);
  recordListenSockets(sockets);
  for (uint32_t w = 0; w < workers; ++w) {
    workers_.push_back(std::make_unique<Worker>(
        runtime_, std::move(sockets[w]), access_log_ ? access_log_->fd() : -1, connection_budget_));
    workers_.back()->onExit([this] {
      workers_running_.fetch_sub(1);
      event_active(worker_exit_, EV_READ, 0);
    });
  }
  // Ticket keys rotate every 12 hours; tickets resume for up to 24.
  event* rotate = event_new(base_, -1, EV_PERSIST, &Server::onRotateTicketKeys, this);
  timeval twelve_hours{12 * 3600, 0};
  event_add(rotate, &twelve_hours);
  events_.push_back(rotate);
  dispatcher_ = std::make_unique<health::LibeventDispatcher>(base_);
  prober_ = std::make_unique<health::HttpProber>(base_);
  health_checker_ =
      std::make_unique<health::HealthChecker>(*dispatcher_, *prober_, health_reporter_);
  health_checker_->setServers(checkedServers(runtime_));
  discovery_ = std::make_unique<ServiceDiscovery>(base_, metrics_, [this] { applyDiscovered(); });
  discovery_->follow(cfg);
  workers_running_ = static_cast<int>(workers);
  for (auto& w : workers_) w->start();
  std::string listeners;
  for (const auto& l : cfg.listeners) listeners += " " + l.name + "=" + l.listen.text;
  log::info("crest started: " + std::to_string(workers) + " workers, listeners:" + listeners +
            (cfg.admin.listen ? ", admin=" + cfg.admin.listen->text : ""));
  if (on_started) on_started();

  event_base_loop(base_, EVLOOP_NO_EXIT_ON_EMPTY);
  for (auto& w : workers_) w->join();
  workers_.clear();
  discovery_.reset();
  health_checker_.reset();
  log::info("crest stopped");
  return 0;
}

void Server::onSignal(evutil_socket_t sig, short, void* arg) {
  auto* self = static_cast<Server*>(arg);
  if (sig == SIGHUP) {
    self->reload();
  } else if (sig == SIGUSR1) {
    self->reopenAccessLog();
  } else {
    self->beginShutdown();
  }
}

void Server::beginShutdown() {
  if (stopping_) return;
  stopping_ = true;
  log::info("shutdown: draining connections (at most " +
            conf::formatDuration(runtime_->config().shutdown_timeout) + ")");
  for (auto& w : workers_) w->beginShutdown();
  shutdown_timer_ = evtimer_new(base_, &Server::onShutdownTimeout, this);
  events_.push_back(shutdown_timer_);
  timeval tv = toTimeval(runtime_->config().shutdown_timeout);
  evtimer_add(shutdown_timer_, &tv);
}

void Server::onShutdownTimeout(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Server*>(arg);
  log::warn("shutdown: timeout reached, closing the connections still open");
  for (auto& w : self->workers_) w->forceStop();
}

void Server::onRotateTicketKeys(evutil_socket_t, short, void* arg) {
  static_cast<Server*>(arg)->ticket_keys_->rotate();
}

void Server::onWorkerExit(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Server*>(arg);
  if (self->workers_running_.load() == 0) event_base_loopbreak(self->base_);
}

void Server::applyConnectionLimit(const conf::Config& config) {
  int64_t limit = config.limits.max_connections;
  if (limit == 0) {
    // Each client connection may hold a server connection too; keep some room
    // for listeners, logs and health checks.
    rlimit files{};
    getrlimit(RLIMIT_NOFILE, &files);
    limit = std::max<int64_t>(1, (static_cast<int64_t>(files.rlim_cur) - 64) / 2);
  }
  if (limit != connection_budget_.limit.exchange(limit)) {
    log::info("max_connections: " + std::to_string(limit) +
              (config.limits.max_connections ? "" : " (auto)"));
  }
}

void Server::reopenAccessLog() {
  if (!access_log_) return;
  std::string error;
  if (access_log_->reopen(error)) {
    log::info("access_log: reopened " + access_log_->path());
  } else {
    log::error("access_log: " + error);
  }
}

void Server::applyAccessLogPath(const std::string& path) {
  std::string current = access_log_ ? access_log_->path() : "";
  if (path == current) return;
  if (path.empty() || current.empty() || path == "-" || current == "-") {
    log::warn(
        "access_log: switching it on or off, or to or from stdout, takes effect at the next start");
    return;
  }
  std::string error;
  if (access_log_->moveTo(path, error)) {
    log::info("access_log: now " + path);
  } else {
    log::error("access_log: " + error + "; still writing to " + current);
  }
}

void Server::reload() {
  if (stopping_) {
    // The listening sockets are closed already; the stop finishes on the configuration it has.
    log::warn("reload: ignored, crest is stopping");
    return;
  }
  auto loaded = conf::loadConfigFile(config_path_);
  std::vector<conf::ConfigError> errors = loaded.errors;
  std::shared_ptr<const proxy::Runtime> next;
  if (errors.empty()) {
    next = proxy::Runtime::build(loaded.config, runtime_.get(), runtime_->generation() + 1,
                                 metrics_, ticket_keys_, errors, &discovery_->addresses());
  }
  // Listeners the new file adds are bound before anything changes: a port
  // that cannot be had fails the reload, and the old configuration stays.
  const conf::Config& old = runtime_->config();
  std::vector<std::vector<ListenSocket>> added(workers_.size());
  std::vector<std::string> added_names, removed_names;
  if (errors.empty()) {
    for (const auto& l : next->config().listeners) {
      if (old.findListener(l.name, l.listen)) continue;
      std::string error;
      auto renamed = std::find_if(old.listeners.begin(), old.listeners.end(),
                                  [&](const conf::Listener& o) { return o.listen == l.listen; });
      if (renamed != old.listeners.end()) {
        // Addresses are unique in a file, so the old name is going away.
        adoptListener(l, renamed->name, added);
      } else if (!bindListener(l, added, error)) {
        errors.push_back({config_path_, 0, 0, "listeners", error});
        break;
      }
      added_names.push_back(l.name);
    }
    for (const auto& l : old.listeners) {
      if (!next->config().findListener(l.name, l.listen)) removed_names.push_back(l.name);
    }
  }
  reload_status_ = proxy::ReloadStatus{log::nowUnixSeconds(), errors.empty()};
  metrics_.countReload(errors.empty(), errors.empty() ? next->generation() : 0,
                       reload_status_.time);
  if (!errors.empty()) {
    closeSockets(added);
    conf::sortByPosition(errors);
    for (const auto& e : errors) log::error("reload: " + e.format());
    log::error("reload: failed, generation " + std::to_string(runtime_->generation()) +
               " keeps serving");
    return;
  }
  applyAccessLogPath(next->config().access_log);
  applyConnectionLimit(next->config());
  std::string changes = describeChanges(old, next->config(), added_names, removed_names);
  for (const auto& name : removed_names) listen_fds_.erase(name);
  recordListenSockets(added);
  runtime_ = next;
  for (size_t w = 0; w < workers_.size(); ++w) {
    workers_[w]->setRuntime(runtime_, added[w], removed_names, runtime_->config().shutdown_timeout);
  }
  health_checker_->setServers(checkedServers(runtime_));
  discovery_->follow(runtime_->config());
  log::info("reload: generation " + std::to_string(runtime_->generation()) + " applied (" +
            changes + ")");
}

void Server::applyDiscovered() {
  if (stopping_) return;
  std::vector<conf::ConfigError> errors;
  auto next = proxy::Runtime::build(runtime_->configPtr(), runtime_.get(), runtime_->generation(),
                                    metrics_, ticket_keys_, errors, &discovery_->addresses());
  if (!next) {
    for (const auto& e : errors) log::error("resolver: " + e.format());
    return;
  }
  runtime_ = next;
  for (auto& w : workers_) w->setRuntime(runtime_, {}, {}, runtime_->config().shutdown_timeout);
  health_checker_->setServers(checkedServers(runtime_));
}

}  // namespace crest::server
