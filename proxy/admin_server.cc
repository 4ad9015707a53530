#include "proxy/admin_server.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include <cstring>

#include "proxy/log.h"
#include "proxy/router.h"

namespace crest::proxy {

using namespace http;
namespace {

std::string jsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

void reply(evhttp_request* req, int code, const char* content_type, const std::string& body) {
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", content_type);
  evbuffer* buf = evbuffer_new();
  evbuffer_add(buf, body.data(), body.size());
  evhttp_send_reply(req, code,
                    code == 200   ? "OK"
                    : code == 404 ? "Not Found"
                                  : "Method Not Allowed",
                    buf);
  evbuffer_free(buf);
}

}  // namespace

AdminServer::AdminServer(event_base* base, RuntimeSource runtime, ReloadSource reload,
                         MetricsSource metrics)
    : http_(evhttp_new(base)),
      runtime_(std::move(runtime)),
      reload_(std::move(reload)),
      metrics_(std::move(metrics)) {
  evhttp_set_gencb(http_, &AdminServer::onRequest, this);
  evhttp_set_allowed_methods(http_, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
}

AdminServer::~AdminServer() {
  evhttp_free(http_);
}

bool AdminServer::serve(int fd) {
  return evhttp_accept_socket(http_, fd) == 0;
}

std::string AdminServer::statusJson(const Runtime& runtime, const ReloadStatus& reload) {
  std::string out =
      "{\"generation\": " + std::to_string(runtime.generation()) +
      ",\n \"last_reload\": {\"time\": " + jsonString(log::isoTime(reload.time, false)) +
      ", \"result\": " + (reload.success ? "\"success\"" : "\"failure\"") + "},\n \"pools\": {";
  bool first_pool = true;
  for (const auto& pool : runtime.pools()) {
    out += first_pool ? "\n  " : ",\n  ";
    first_pool = false;
    out += jsonString(pool.config->name) + ": {\"balance\": " + jsonString(pool.config->balance) +
           ", \"servers\": [";
    for (size_t i = 0; i < pool.servers.size(); ++i) {
      const auto& s = *pool.servers[i];
      out += i == 0 ? "\n    " : ",\n    ";
      out += "{\"address\": " + jsonString(s.address) +
             ", \"weight\": " + std::to_string(pool.config->servers[i].weight) +
             ", \"healthy\": " + (s.healthy.load() ? "true" : "false") +
             ", \"active_requests\": " + std::to_string(s.active_requests.load()) + "}";
    }
    out += "]}";
  }
  return out + "}}\n";
}

void AdminServer::purgeCache(evhttp_request* req, const Runtime& runtime) {
  const char* uri = evhttp_request_get_uri(req);
  evkeyvalq query{};
  const char* host = nullptr;
  const char* path = nullptr;
  const char* q = uri ? std::strchr(uri, '?') : nullptr;
  if (q != nullptr && evhttp_parse_query_str(q + 1, &query) == 0) {
    host = evhttp_find_header(&query, "host");
    path = evhttp_find_header(&query, "path");
  }
  if (host == nullptr || path == nullptr || *host == '\0' || *path != '/') {
    reply(req, 400, "text/plain; charset=utf-8",
          "purge needs ?host=H&path=P (P starts with /; a trailing * purges the prefix)\n");
  } else if (!runtime.cache()) {
    reply(req, 404, "text/plain; charset=utf-8", "no cache is configured\n");
  } else {
    // Keys hold the host as routing saw it: lower-case, without port.
    size_t purged = runtime.cache()->purge(hostWithoutPort(host), path);
    reply(req, 200, "application/json", "{\"purged\": " + std::to_string(purged) + "}\n");
  }
  evhttp_clear_headers(&query);
}

void AdminServer::onRequest(evhttp_request* req, void* arg) {
  auto* self = static_cast<AdminServer*>(arg);
  const char* uri = evhttp_request_get_uri(req);
  std::string path = uri ? uri : "/";
  path = path.substr(0, path.find('?'));
  bool get = evhttp_request_get_command(req) == EVHTTP_REQ_GET ||
             evhttp_request_get_command(req) == EVHTTP_REQ_HEAD;
  if (path == "/metrics" && get) {
    reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", self->metrics_());
  } else if (path == "/healthz" && get) {
    reply(req, 200, "text/plain; charset=utf-8", "ok\n");
  } else if (path == "/status" && get) {
    reply(req, 200, "application/json", statusJson(*self->runtime_(), self->reload_()));
  } else if (path == "/cache/purge" && evhttp_request_get_command(req) == EVHTTP_REQ_POST) {
    purgeCache(req, *self->runtime_());
  } else {
    reply(req, 404, "text/plain; charset=utf-8",
          "not found: the admin port serves GET /metrics, /healthz, /status and POST "
          "/cache/purge\n");
  }
}

}  // namespace crest::proxy
