#pragma once
// Parsed HTTP/1 message heads. What the proxy sends on is always serialized
// from these fields, never the peer's raw bytes.

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace crest::http {

bool equalsIgnoreCase(std::string_view a, std::string_view b);

// 'A'..'Z' lowered, every other byte as it is (no locale).
inline char lowerAscii(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

// The header names the proxy itself acts on, told apart once per field when
// it is parsed rather than by comparing strings at every use.
enum class HeaderName : uint8_t {
  Other,
  Connection,
  ContentLength,
  Expect,
  Host,
  KeepAlive,
  ProxyConnection,
  TE,
  Trailer,
  TransferEncoding,
  Upgrade,
  XForwardedFor,
  XForwardedHost,
  XForwardedProto,
  XRequestId,
  // A request field whose name has `_` in it (no name above has one), set
  // by the request parser, not by classifyHeaderName: never forwarded to a
  // server, which might read `Transfer_Encoding` as Transfer-Encoding (CGI,
  // WSGI and some frameworks map `_` to `-`).
  Underscored,
};

HeaderName classifyHeaderName(std::string_view name);

struct HeaderField {
  HeaderField() = default;
  HeaderField(std::string field_name, std::string field_value)
      : name(std::move(field_name)), value(std::move(field_value)), id(classifyHeaderName(name)) {}

  std::string name;  // as received
  std::string value;
  HeaderName id = HeaderName::Other;  // classifyHeaderName(name)
};

// The fields of one head, in order. clear() keeps the fields themselves, so
// that the next message's headers reuse their string buffers: a keep-alive
// connection's heads allocate nothing once warm.
class HeaderList {
 public:
  HeaderList() = default;
  HeaderList(std::initializer_list<HeaderField> fields) : fields_(fields), size_(fields.size()) {}

  const HeaderField* begin() const { return fields_.data(); }
  const HeaderField* end() const { return fields_.data() + size_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  HeaderField& back() { return fields_[size_ - 1]; }
  void clear() { size_ = 0; }
  // A new last field, empty, in an earlier field's buffers when there is one.
  HeaderField& add() {
    if (size_ == fields_.size()) fields_.emplace_back();
    HeaderField& f = fields_[size_++];
    f.name.clear();
    f.value.clear();
    f.id = HeaderName::Other;
    return f;
  }

 private:
  std::vector<HeaderField> fields_;
  size_t size_ = 0;
};

// How a message body is delimited on the wire.
enum class Framing { None, ContentLength, Chunked, UntilClose };

struct MessageHead {
  // Requests.
  std::string method;
  std::string target;
  // Responses.
  int status = 0;
  std::string reason;

  int version_major = 1;  // 2: a request that came as an HTTP/2 stream
  int version_minor = 1;  // HTTP/1.x
  HeaderList headers;
  Framing framing = Framing::None;
  uint64_t content_length = 0;
  bool keep_alive = true;  // what the peer asked for, per its version and Connection
  bool expect_continue = false;
  // Requests: a bodiless GET asking to become a WebSocket (Connection:
  // upgrade and Upgrade: websocket, or HTTP/2's extended CONNECT).
  bool upgrade_websocket = false;
  uint32_t underscored_fields = 0;  // fields named with `_` (HeaderName::Underscored)

  // As a new message's, keeping the header fields' buffers.
  void clear() {
    method.clear();
    target.clear();
    reason.clear();
    status = 0;
    version_major = 1;
    version_minor = 1;
    framing = Framing::None;
    content_length = 0;
    keep_alive = true;
    expect_continue = false;
    upgrade_websocket = false;
    underscored_fields = 0;
    headers.clear();
  }

  // The first header with that name (case-insensitive), or nullptr.
  const std::string* find(std::string_view name) const {
    for (const auto& h : headers) {
      if (equalsIgnoreCase(h.name, name)) return &h.value;
    }
    return nullptr;
  }
  const std::string* find(HeaderName id) const {
    for (const auto& h : headers) {
      if (h.id == id) return &h.value;
    }
    return nullptr;
  }
  // Whether a field `id` lists `token` (comma-separated, case-insensitive).
  bool hasToken(HeaderName id, std::string_view token) const;
};

// Is `token` among the comma-separated tokens of `list` (case-insensitive)?
bool listHasToken(std::string_view list, std::string_view token);

namespace detail {
// Eight bytes with 'A'..'Z' lowered: per byte, the high bit of (b + 0x3f) says
// b >= 'A' and that of (b + 0x25) says b > 'Z' (bytes of 0x80 and up excluded).
inline uint64_t lowerWord(const char* p) {
  uint64_t x;
  std::memcpy(&x, p, 8);
  constexpr uint64_t kOnes = 0x0101010101010101ull;
  uint64_t low7 = x & (kOnes * 0x7f);
  uint64_t upper = (low7 + kOnes * 0x3f) & ~(low7 + kOnes * 0x25) & ~x & (kOnes * 0x80);
  return x | (upper >> 2);
}

// Whether any byte of the eight is '_': x ^ '_' has a zero byte there, and
// (v - 0x01..) & ~v & 0x80.. is non-zero exactly when v has a zero byte.
inline bool wordHasUnderscore(uint64_t x) {
  constexpr uint64_t kOnes = 0x0101010101010101ull;
  uint64_t v = x ^ (kOnes * '_');
  return ((v - kOnes) & ~v & (kOnes * 0x80)) != 0;
}
inline uint64_t loadWord(const char* p) {
  uint64_t x;
  std::memcpy(&x, p, 8);
  return x;
}
}  // namespace detail

// Whether `name` contains '_', a word at a time: header names are short, and
// a call to memchr for each costs more than the search. Never reads outside
// the name: shorter ones are loaded in overlapping halves, or byte by byte
// into a zeroed word (zero bytes are not '_').
inline bool hasUnderscore(std::string_view name) {
  const char* p = name.data();
  size_t n = name.size();
  if (n >= 8) {
    for (size_t i = 0; i + 8 < n; i += 8) {
      if (detail::wordHasUnderscore(detail::loadWord(p + i))) return true;
    }
    return detail::wordHasUnderscore(detail::loadWord(p + n - 8));
  }
  uint64_t x = 0;
  if (n >= 4) {
    uint32_t head, tail;
    std::memcpy(&head, p, 4);
    std::memcpy(&tail, p + n - 4, 4);
    x = head | (static_cast<uint64_t>(tail) << 32);
  } else {
    for (size_t i = 0; i < n; ++i)
      x |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  }
  return detail::wordHasUnderscore(x);
}

inline bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  size_t n = a.size();
  if (n >= 8) {
    // Whole words, the last one overlapping the one before when n is not a multiple of 8.
    for (size_t i = 0; i + 8 < n; i += 8) {
      if (detail::lowerWord(a.data() + i) != detail::lowerWord(b.data() + i)) return false;
    }
    return detail::lowerWord(a.data() + n - 8) == detail::lowerWord(b.data() + n - 8);
  }
  for (size_t i = 0; i < n; ++i) {
    if (lowerAscii(a[i]) != lowerAscii(b[i])) return false;
  }
  return true;
}

}  // namespace crest::http
