#include "proxy/header_rewrite.h"

#include <cstdio>
#include <string>

namespace crest::proxy {
namespace {

constexpr std::string_view kAlwaysHopByHop[] = {
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "transfer-encoding",
};

// Is `name` among the comma-separated tokens of `list`?
bool listHasToken(std::string_view list, std::string_view name) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view token = list.substr(0, comma);
    while (!token.empty() && (token.front() == ' ' || token.front() == '\t'))
      token.remove_prefix(1);
    while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
    if (equalsIgnoreCase(token, name)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

void addHeader(evbuffer* out, std::string_view name, std::string_view value) {
  evbuffer_add(out, name.data(), name.size());
  evbuffer_add(out, ": ", 2);
  evbuffer_add(out, value.data(), value.size());
  evbuffer_add(out, "\r\n", 2);
}

void addContentLength(evbuffer* out, uint64_t length) {
  char line[48];
  int n = std::snprintf(line, sizeof line, "Content-Length: %llu\r\n",
                        static_cast<unsigned long long>(length));
  evbuffer_add(out, line, static_cast<size_t>(n));
}

void addStatusLine(evbuffer* out, int status, std::string_view reason) {
  char line[32];
  int n = std::snprintf(line, sizeof line, "HTTP/1.1 %d ", status);
  evbuffer_add(out, line, static_cast<size_t>(n));
  evbuffer_add(out, reason.data(), reason.size());
  evbuffer_add(out, "\r\n", 2);
}

// Connection header for the client, the proxy's own lines, the blank line.
void endResponseHead(evbuffer* out, int client_minor, bool close, std::string_view extra_headers) {
  if (close) {
    addHeader(out, "Connection", "close");
  } else if (client_minor == 0) {
    addHeader(out, "Connection", "keep-alive");
  }
  evbuffer_add(out, extra_headers.data(), extra_headers.size());
  evbuffer_add(out, "\r\n", 2);
}

}  // namespace

bool isHopByHop(const MessageHead& head, std::string_view name) {
  for (auto h : kAlwaysHopByHop) {
    if (equalsIgnoreCase(h, name)) return true;
  }
  for (const auto& f : head.headers) {
    if (equalsIgnoreCase(f.name, "connection") && listHasToken(f.value, name)) return true;
  }
  return false;
}

void writeUpstreamRequestHead(const MessageHead& request, std::string_view target,
                              const ForwardInfo& info, evbuffer* out) {
  evbuffer_add(out, request.method.data(), request.method.size());
  evbuffer_add(out, " ", 1);
  evbuffer_add(out, target.data(), target.size());
  evbuffer_add(out, " HTTP/1.1\r\n", 11);
  std::string forwarded_for;
  const std::string* host = nullptr;
  bool has_request_id = false;
  for (const auto& f : request.headers) {
    if (isHopByHop(request, f.name) || equalsIgnoreCase(f.name, "content-length") ||
        equalsIgnoreCase(f.name, "expect") || equalsIgnoreCase(f.name, "x-forwarded-proto") ||
        equalsIgnoreCase(f.name, "x-forwarded-host")) {
      continue;
    }
    if (equalsIgnoreCase(f.name, "x-forwarded-for")) {
      forwarded_for += f.value + ", ";
      continue;
    }
    if (equalsIgnoreCase(f.name, "host")) host = &f.value;
    if (equalsIgnoreCase(f.name, "x-request-id")) has_request_id = true;
    addHeader(out, f.name, f.value);
  }
  if (host == nullptr) addHeader(out, "Host", info.default_host);
  forwarded_for += info.client_ip;
  addHeader(out, "X-Forwarded-For", forwarded_for);
  addHeader(out, "X-Forwarded-Proto", info.proto);
  addHeader(out, "X-Forwarded-Host", host != nullptr ? std::string_view(*host) : info.default_host);
  if (!has_request_id) addHeader(out, "X-Request-Id", info.request_id);
  if (request.framing == Framing::Chunked) {
    addHeader(out, "Transfer-Encoding", "chunked");
  } else if (request.framing == Framing::ContentLength) {
    addContentLength(out, request.content_length);
  }
  evbuffer_add(out, "\r\n", 2);
}

void writeDownstreamResponseHead(const MessageHead& response, int client_minor, bool chunked,
                                 bool close, evbuffer* out, std::string_view extra_headers) {
  addStatusLine(out, response.status, response.reason);
  for (const auto& f : response.headers) {
    if (isHopByHop(response, f.name)) continue;
    // A bodiless response (HEAD, 204, 304) keeps the server's Content-Length:
    // it describes the representation, not this message's framing.
    if (equalsIgnoreCase(f.name, "content-length") && response.framing != Framing::None) continue;
    addHeader(out, f.name, f.value);
  }
  if (response.framing == Framing::ContentLength) {
    addContentLength(out, response.content_length);
  } else if (chunked) {
    addHeader(out, "Transfer-Encoding", "chunked");
  }
  endResponseHead(out, client_minor, close, extra_headers);
}

void writeStoredResponseHead(int status, std::string_view reason, std::string_view lines,
                             uint64_t content_length, int client_minor, bool close, evbuffer* out,
                             std::string_view extra_headers) {
  addStatusLine(out, status, reason);
  evbuffer_add(out, lines.data(), lines.size());
  if (status != 204 && status != 304) addContentLength(out, content_length);
  endResponseHead(out, client_minor, close, extra_headers);
}

void storedHeaderLines(const MessageHead& response, std::string& all, std::string& not_modified) {
  constexpr std::string_view kRepeatedBy304[] = {"cache-control", "content-location", "date",
                                                 "etag",          "expires",          "vary"};
  for (const auto& f : response.headers) {
    if (isHopByHop(response, f.name) || equalsIgnoreCase(f.name, "content-length") ||
        equalsIgnoreCase(f.name, "age")) {
      continue;  // framing is restated per answer, Age computed per answer
    }
    std::string line = f.name + ": " + f.value + "\r\n";
    all += line;
    for (auto name : kRepeatedBy304) {
      if (equalsIgnoreCase(f.name, name)) not_modified += line;
    }
  }
}

void writeProxyResponse(int status, std::string_view content_type, std::string_view body,
                        bool close, evbuffer* out, std::string_view extra_headers) {
  addStatusLine(out, status, reasonPhrase(status));
  addHeader(out, "Content-Type", content_type);
  addContentLength(out, body.size());
  if (close) addHeader(out, "Connection", "close");
  evbuffer_add(out, extra_headers.data(), extra_headers.size());
  evbuffer_add(out, "\r\n", 2);
  evbuffer_add(out, body.data(), body.size());
}

std::string_view reasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Unknown";
  }
}

}  // namespace crest::proxy
