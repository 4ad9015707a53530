#include "observe/admin_server.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include <cstring>

namespace crest::observe {

std::string jsonString(std::string_view s) {
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

namespace {

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

AdminServer::AdminServer(event_base* base, AdminHandlers handlers)
    : http_(evhttp_new(base)), handlers_(std::move(handlers)) {
  evhttp_set_gencb(http_, &AdminServer::onRequest, this);
  evhttp_set_allowed_methods(http_, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
}

AdminServer::~AdminServer() {
  evhttp_free(http_);
}

bool AdminServer::serve(int fd) {
  return evhttp_accept_socket(http_, fd) == 0;
}

void AdminServer::purgeCache(evhttp_request* req) {
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
  } else if (auto purged = handlers_.purge(host, path)) {
    reply(req, 200, "application/json", "{\"purged\": " + std::to_string(*purged) + "}\n");
  } else {
    reply(req, 404, "text/plain; charset=utf-8", "no cache is configured\n");
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
    reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", self->handlers_.metrics());
  } else if (path == "/healthz" && get) {
    reply(req, 200, "text/plain; charset=utf-8", "ok\n");
  } else if (path == "/status" && get) {
    reply(req, 200, "application/json", self->handlers_.status());
  } else if (path == "/cache/purge" && evhttp_request_get_command(req) == EVHTTP_REQ_POST) {
    self->purgeCache(req);
  } else {
    reply(req, 404, "text/plain; charset=utf-8",
          "not found: the admin port serves GET /metrics, /healthz, /status and POST "
          "/cache/purge\n");
  }
}

}  // namespace crest::observe
