#pragma once
// Parsed HTTP/1 message heads. What the proxy sends on is always serialized
// from these fields, never the peer's raw bytes.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace crest::proxy {

struct HeaderField {
  std::string name;  // as received
  std::string value;
};

// How a message body is delimited on the wire.
enum class Framing { None, ContentLength, Chunked, UntilClose };

bool equalsIgnoreCase(std::string_view a, std::string_view b);

struct MessageHead {
  // Requests.
  std::string method;
  std::string target;
  // Responses.
  int status = 0;
  std::string reason;

  int version_minor = 1;  // HTTP/1.x
  std::vector<HeaderField> headers;
  Framing framing = Framing::None;
  uint64_t content_length = 0;
  bool keep_alive = true;  // what the peer asked for, per its version and Connection
  bool expect_continue = false;

  // The first header with that name (case-insensitive), or nullptr.
  const std::string* find(std::string_view name) const {
    for (const auto& h : headers) {
      if (equalsIgnoreCase(h.name, name)) return &h.value;
    }
    return nullptr;
  }
  size_t count(std::string_view name) const {
    size_t n = 0;
    for (const auto& h : headers) n += equalsIgnoreCase(h.name, name) ? 1 : 0;
    return n;
  }
};

inline bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

}  // namespace crest::proxy
