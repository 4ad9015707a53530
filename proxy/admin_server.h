#pragma once
// The admin HTTP endpoints on admin.listen, served by the main thread:
// GET /metrics, GET /healthz, GET /status, POST /cache/purge. Nothing of it is reachable through
// the proxy listeners. Control-plane traffic, so libevent's evhttp is good enough here.

#include <event2/event.h>
#include <event2/http.h>

#include <functional>
#include <memory>
#include <string>

#include "proxy/runtime.h"

namespace crest::proxy {

struct ReloadStatus {
  double time = 0;  // unix seconds of the last reload attempt (or start)
  bool success = true;
};

class AdminServer {
 public:
  using RuntimeSource = std::function<std::shared_ptr<const Runtime>()>;
  using ReloadSource = std::function<ReloadStatus()>;
  using MetricsSource = std::function<std::string()>;

  AdminServer(event_base* base, RuntimeSource runtime, ReloadSource reload, MetricsSource metrics);
  ~AdminServer();

  // Binds `fd` (a listening socket); false when evhttp refuses it.
  bool serve(int fd);

  // The /status document for `runtime`.
  static std::string statusJson(const Runtime& runtime, const ReloadStatus& reload);

 private:
  static void onRequest(evhttp_request* req, void* arg);
  // POST /cache/purge?host=H&path=P: removes matching entries (a prefix when P ends in *).
  static void purgeCache(evhttp_request* req, const Runtime& runtime);

  evhttp* http_;
  RuntimeSource runtime_;
  ReloadSource reload_;
  MetricsSource metrics_;
};

}  // namespace crest::proxy
