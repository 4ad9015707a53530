#pragma once
// The admin HTTP endpoints on admin.listen, served by the main thread:
// GET /metrics, GET /healthz, GET /status, POST /cache/purge. Nothing of it is reachable through
// the proxy listeners. Control-plane traffic, so libevent's evhttp is good enough here.
// What the documents say comes from the handlers: this class knows HTTP, not the proxy.

#include <event2/event.h>
#include <event2/http.h>

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace crest::observe {

struct AdminHandlers {
  std::function<std::string()> metrics;  // GET /metrics: the text exposition
  std::function<std::string()> status;   // GET /status: a JSON document
  // POST /cache/purge?host=H&path=P: how many entries went (a prefix when P
  // ends in *), or nullopt when no cache is configured (404).
  std::function<std::optional<size_t>(std::string_view host, std::string_view path)> purge;
};

class AdminServer {
 public:
  AdminServer(event_base* base, AdminHandlers handlers);
  ~AdminServer();

  // Binds `fd` (a listening socket); false when evhttp refuses it.
  bool serve(int fd);

 private:
  static void onRequest(evhttp_request* req, void* arg);
  void purgeCache(evhttp_request* req);

  evhttp* http_;
  AdminHandlers handlers_;
};

// `s` as a JSON string literal, quotes included.
std::string jsonString(std::string_view s);

}  // namespace crest::observe
