#include "http/header_rewrite.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <string>
#include <vector>

namespace crest::http {
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

constexpr uint32_t idBit(HeaderName id) {
  return 1u << static_cast<unsigned>(id);
}

// Request fields the proxy states itself (framing, Expect handled here,
// forwarding headers) or never forwards (names with `_`).
constexpr uint32_t kRestatedOrDropped =
    idBit(HeaderName::ContentLength) | idBit(HeaderName::Expect) |
    idBit(HeaderName::XForwardedProto) | idBit(HeaderName::XForwardedHost) |
    idBit(HeaderName::Underscored);

// POST, PUT, PATCH: methods whose requests carry a body, if only an empty one.
bool definesBody(std::string_view method) {
  return method == "POST" || method == "PUT" || method == "PATCH";
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

// Heads are assembled in one buffer and added to the output in one call:
// evbuffer_add costs about a hundred instructions, a head is dozens of
// pieces. A piece costs a bounds check and a copy. The buffer is the
// thread's and keeps its size, so it grows only for a head longer than any
// before it.
class HeadBuffer {
 public:
  static HeadBuffer& forThread() {
    thread_local HeadBuffer buffer;
    buffer.length_ = 0;
    return buffer;
  }
  HeadBuffer& put(std::string_view s) {
    copy(room(s.size()), s);
    return *this;
  }
  HeadBuffer& put(char c) {
    *room(1) = c;
    return *this;
  }
  HeadBuffer& putNumber(uint64_t n) {
    char digits[24];
    auto end = std::to_chars(digits, digits + sizeof digits, n).ptr;
    return put(std::string_view(digits, static_cast<size_t>(end - digits)));
  }
  // "Name: value\r\n"
  void header(std::string_view name, std::string_view value) {
    char* p = copy(room(name.size() + value.size() + 4), name);
    p = copy(copy(p, ": "), value);
    copy(p, "\r\n");
  }
  void contentLength(uint64_t length) { put("Content-Length: ").putNumber(length).put("\r\n"); }
  void statusLine(int status, std::string_view reason) {
    put("HTTP/1.1 ").putNumber(static_cast<uint64_t>(status)).put(' ').put(reason).put("\r\n");
  }
  void addTo(evbuffer* out) const { evbuffer_add(out, bytes_.data(), length_); }
  std::string_view view() const { return {bytes_.data(), length_}; }

 private:
  // Copies s to p; the byte after it. (A default string_view has no data to copy from.)
  static char* copy(char* p, std::string_view s) {
    if (!s.empty()) std::memcpy(p, s.data(), s.size());
    return p + s.size();
  }
  // The next n bytes of the head, to be written.
  char* room(size_t n) {
    if (length_ + n > bytes_.size()) bytes_.resize(std::max(2 * bytes_.size(), length_ + n));
    char* p = bytes_.data() + length_;
    length_ += n;
    return p;
  }

  std::vector<char> bytes_;
  size_t length_ = 0;
};

// What a WebSocket handshake says of its connection, both ways: the only
// upgrade crest carries, so the only one it restates.
constexpr std::string_view kUpgradeLines = "Connection: upgrade\r\nUpgrade: websocket\r\n";

// Connection header for the client, the proxy's own lines, the blank line.
void endResponseHead(HeadBuffer& head, int status, int client_minor, bool close,
                     std::string_view extra_headers) {
  if (status == 101) {
    head.put(kUpgradeLines);
  } else if (close) {
    head.header("Connection", "close");
  } else if (client_minor == 0) {
    head.header("Connection", "keep-alive");
  }
  head.put(extra_headers).put("\r\n");
}

}  // namespace

std::string_view writeUpstreamRequestHead(const MessageHead& request, std::string_view target,
                                          const ForwardInfo& info) {
  HeadBuffer& head = HeadBuffer::forThread();
  HopByHop hop_by_hop(request);
  head.put(request.method).put(' ').put(target).put(" HTTP/1.1\r\n");
  std::string forwarded_for;  // earlier X-Forwarded-For values, each followed by ", "
  const std::string* host = nullptr;
  bool has_request_id = false;
  for (const auto& f : request.headers) {
    if (hop_by_hop(f) || (kRestatedOrDropped & idBit(f.id)) != 0) continue;
    if (f.id == HeaderName::XForwardedFor) {
      forwarded_for.append(f.value).append(", ");
      continue;
    }
    if (f.id == HeaderName::Host) host = &f.value;
    if (f.id == HeaderName::XRequestId) has_request_id = true;
    head.header(f.name, f.value);
  }
  if (host == nullptr) head.header("Host", info.default_host);
  head.put("X-Forwarded-For: ").put(forwarded_for).put(info.client_ip).put("\r\n");
  head.header("X-Forwarded-Proto", info.proto);
  head.header("X-Forwarded-Host", host != nullptr ? std::string_view(*host) : info.default_host);
  if (!has_request_id) head.header("X-Request-Id", info.request_id);
  if (request.upgrade_websocket) head.put(kUpgradeLines);
  if (request.framing == Framing::Chunked) {
    head.header("Transfer-Encoding", "chunked");
  } else if (request.framing == Framing::ContentLength || definesBody(request.method)) {
    // An empty body of a method that has one is stated: some servers answer
    // 411 Length Required to a POST without a length.
    head.contentLength(request.content_length);
  }
  head.put("\r\n");
  return head.view();
}

std::string_view writeDownstreamResponseHead(const MessageHead& response, int client_minor,
                                             bool chunked, bool close,
                                             std::string_view extra_headers) {
  HeadBuffer& head = HeadBuffer::forThread();
  HopByHop hop_by_hop(response);
  head.statusLine(response.status, response.reason);
  for (const auto& f : response.headers) {
    if (hop_by_hop(f)) continue;
    // A bodiless response (HEAD, 204, 304) keeps the server's Content-Length:
    // it describes the representation, not this message's framing.
    if (f.id == HeaderName::ContentLength && response.framing != Framing::None) continue;
    head.header(f.name, f.value);
  }
  if (response.framing == Framing::ContentLength) {
    head.contentLength(response.content_length);
  } else if (chunked) {
    head.header("Transfer-Encoding", "chunked");
  }
  endResponseHead(head, response.status, client_minor, close, extra_headers);
  return head.view();
}

void forwardedResponseFields(const MessageHead& response,
                             std::vector<std::pair<std::string_view, std::string_view>>& out) {
  out.clear();
  HopByHop hop_by_hop(response);
  for (const auto& f : response.headers) {
    if (hop_by_hop(f)) continue;
    if (f.id == HeaderName::ContentLength && response.framing != Framing::None) continue;
    out.emplace_back(f.name, f.value);
  }
}

void writeStoredResponseHead(int status, std::string_view reason, std::string_view lines,
                             uint64_t content_length, int client_minor, bool close, evbuffer* out,
                             std::string_view extra_headers) {
  HeadBuffer& head = HeadBuffer::forThread();
  head.statusLine(status, reason);
  head.put(lines);
  if (status != 204 && status != 304) head.contentLength(content_length);
  endResponseHead(head, status, client_minor, close, extra_headers);
  head.addTo(out);
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
  HeadBuffer& head = HeadBuffer::forThread();
  head.statusLine(status, reasonPhrase(status));
  head.header("Content-Type", content_type);
  head.contentLength(body.size());
  if (close) head.header("Connection", "close");
  head.put(extra_headers).put("\r\n").put(body);
  head.addTo(out);
}

std::string_view reasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
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

}  // namespace crest::http
