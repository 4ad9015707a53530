#include "proxy/header_rewrite.h"

#include <charconv>
#include <string>
#include <vector>

namespace crest::proxy {
namespace {

// Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade, Transfer-Encoding.
bool alwaysHopByHop(HeaderName id) {
  switch (id) {
    case HeaderName::Connection:
    case HeaderName::KeepAlive:
    case HeaderName::ProxyConnection:
    case HeaderName::TE:
    case HeaderName::Trailer:
    case HeaderName::TransferEncoding:
    case HeaderName::Upgrade:
      return true;
    default:
      return false;
  }
}

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

// Whether a header is hop-by-hop in one message: the fixed names, and the
// ones its Connection headers list. The list is read once per message, not
// once per header.
class HopByHop {
 public:
  explicit HopByHop(const MessageHead& head) {
    for (const auto& f : head.headers) {
      // "keep-alive" and "close" name no header worth a search.
      if (f.id == HeaderName::Connection && !equalsIgnoreCase(f.value, "keep-alive") &&
          !equalsIgnoreCase(f.value, "close")) {
        connection_values_.push_back(f.value);
      }
    }
  }
  bool operator()(const HeaderField& f) const {
    if (alwaysHopByHop(f.id)) return true;
    for (auto list : connection_values_) {
      if (listHasToken(list, f.name)) return true;
    }
    return false;
  }

 private:
  std::vector<std::string_view> connection_values_;
};

// Heads are assembled in one string and added to the output in one call:
// evbuffer_add costs about a hundred instructions, a head is dozens of pieces.
std::string& scratchHead() {
  thread_local std::string head;
  head.clear();
  return head;
}

void addHeader(std::string& out, std::string_view name, std::string_view value) {
  out.append(name).append(": ", 2).append(value).append("\r\n", 2);
}

void addNumber(std::string& out, uint64_t n) {
  char digits[24];
  auto end = std::to_chars(digits, digits + sizeof digits, n).ptr;
  out.append(digits, static_cast<size_t>(end - digits));
}

void addContentLength(std::string& out, uint64_t length) {
  out.append("Content-Length: ");
  addNumber(out, length);
  out.append("\r\n", 2);
}

void addStatusLine(std::string& out, int status, std::string_view reason) {
  out.append("HTTP/1.1 ");
  addNumber(out, static_cast<uint64_t>(status));
  out.push_back(' ');
  out.append(reason).append("\r\n", 2);
}

// Connection header for the client, the proxy's own lines, the blank line.
void endResponseHead(std::string& out, int client_minor, bool close,
                     std::string_view extra_headers) {
  if (close) {
    addHeader(out, "Connection", "close");
  } else if (client_minor == 0) {
    addHeader(out, "Connection", "keep-alive");
  }
  out.append(extra_headers).append("\r\n", 2);
}

}  // namespace

void writeUpstreamRequestHead(const MessageHead& request, std::string_view target,
                              const ForwardInfo& info, evbuffer* out) {
  std::string& head = scratchHead();
  HopByHop hop_by_hop(request);
  head.append(request.method);
  head.append(" ");
  head.append(target);
  head.append(" HTTP/1.1\r\n");
  std::string forwarded_for;  // earlier X-Forwarded-For values, each followed by ", "
  const std::string* host = nullptr;
  bool has_request_id = false;
  for (const auto& f : request.headers) {
    if (hop_by_hop(f) || f.id == HeaderName::ContentLength || f.id == HeaderName::Expect ||
        f.id == HeaderName::XForwardedProto || f.id == HeaderName::XForwardedHost) {
      continue;
    }
    if (f.id == HeaderName::XForwardedFor) {
      forwarded_for.append(f.value).append(", ");
      continue;
    }
    if (f.id == HeaderName::Host) host = &f.value;
    if (f.id == HeaderName::XRequestId) has_request_id = true;
    addHeader(head, f.name, f.value);
  }
  if (host == nullptr) addHeader(head, "Host", info.default_host);
  head.append("X-Forwarded-For: ").append(forwarded_for).append(info.client_ip).append("\r\n");
  addHeader(head, "X-Forwarded-Proto", info.proto);
  addHeader(head, "X-Forwarded-Host",
            host != nullptr ? std::string_view(*host) : info.default_host);
  if (!has_request_id) addHeader(head, "X-Request-Id", info.request_id);
  if (request.framing == Framing::Chunked) {
    addHeader(head, "Transfer-Encoding", "chunked");
  } else if (request.framing == Framing::ContentLength) {
    addContentLength(head, request.content_length);
  }
  head.append("\r\n");
  evbuffer_add(out, head.data(), head.size());
}

void writeDownstreamResponseHead(const MessageHead& response, int client_minor, bool chunked,
                                 bool close, evbuffer* out, std::string_view extra_headers) {
  std::string& head = scratchHead();
  HopByHop hop_by_hop(response);
  addStatusLine(head, response.status, response.reason);
  for (const auto& f : response.headers) {
    if (hop_by_hop(f)) continue;
    // A bodiless response (HEAD, 204, 304) keeps the server's Content-Length:
    // it describes the representation, not this message's framing.
    if (f.id == HeaderName::ContentLength && response.framing != Framing::None) continue;
    addHeader(head, f.name, f.value);
  }
  if (response.framing == Framing::ContentLength) {
    addContentLength(head, response.content_length);
  } else if (chunked) {
    addHeader(head, "Transfer-Encoding", "chunked");
  }
  endResponseHead(head, client_minor, close, extra_headers);
  evbuffer_add(out, head.data(), head.size());
}

void writeStoredResponseHead(int status, std::string_view reason, std::string_view lines,
                             uint64_t content_length, int client_minor, bool close, evbuffer* out,
                             std::string_view extra_headers) {
  std::string& head = scratchHead();
  addStatusLine(head, status, reason);
  head.append(lines);
  if (status != 204 && status != 304) addContentLength(head, content_length);
  endResponseHead(head, client_minor, close, extra_headers);
  evbuffer_add(out, head.data(), head.size());
}

void storedHeaderLines(const MessageHead& response, std::string& all, std::string& not_modified) {
  constexpr std::string_view kRepeatedBy304[] = {"cache-control", "content-location", "date",
                                                 "etag",          "expires",          "vary"};
  HopByHop hop_by_hop(response);
  for (const auto& f : response.headers) {
    if (hop_by_hop(f) || f.id == HeaderName::ContentLength || equalsIgnoreCase(f.name, "age")) {
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
  std::string& head = scratchHead();
  addStatusLine(head, status, reasonPhrase(status));
  addHeader(head, "Content-Type", content_type);
  addContentLength(head, body.size());
  if (close) addHeader(head, "Connection", "close");
  head.append(extra_headers);
  head.append("\r\n");
  head.append(body);
  evbuffer_add(out, head.data(), head.size());
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
