#include "io/proxy_protocol.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdint>
#include <cstring>
#include <string>

namespace crest::io {
namespace {

constexpr std::string_view kV2Signature("\r\n\r\n\0\r\nQUIT\n", 12);
constexpr std::string_view kV1Prefix = "PROXY ";
constexpr size_t kV1MaxLine = 107;  // CRLF included

ProxyHeader invalid(const char* why) {
  ProxyHeader h;
  h.status = ProxyHeader::Status::Invalid;
  h.error = why;
  return h;
}

ProxyHeader done(size_t length) {
  ProxyHeader h;
  h.status = ProxyHeader::Status::Done;
  h.length = length;
  return h;
}

// The next space-separated field of a v1 line; false when there is none.
bool nextField(std::string_view& rest, std::string_view& field) {
  size_t space = rest.find(' ');
  field = rest.substr(0, space);
  rest = space == std::string_view::npos ? std::string_view() : rest.substr(space + 1);
  return !field.empty();
}

// A v1 port: decimal, 0-65535, no leading zero.
bool parsePort(std::string_view s, uint16_t& port) {
  if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return false;
  uint32_t value = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<uint32_t>(c - '0');
  }
  if (value > 65535) return false;
  port = static_cast<uint16_t>(value);
  return true;
}

// A v1 address of `family` in its canonical text (inet_pton refuses IPv4
// with leading zeros, and anything but one address).
bool parseAddress(int family, std::string_view s, void* out) {
  if (s.size() > 39) return false;
  char text[40];
  std::memcpy(text, s.data(), s.size());
  text[s.size()] = '\0';
  return inet_pton(family, text, out) == 1;
}

ProxyHeader parseV1(std::string_view bytes) {
  size_t end = bytes.substr(0, kV1MaxLine).find("\r\n");
  if (end == std::string_view::npos) {
    if (bytes.size() >= kV1MaxLine) return invalid("a PROXY v1 line longer than 107 bytes");
    // A CR or LF that is not the line's end cannot become one.
    if (bytes.find_first_of("\n") != std::string_view::npos ||
        bytes.substr(0, bytes.size() - 1).find('\r') != std::string_view::npos)
      return invalid("a PROXY v1 line not ended by CRLF");
    return {};
  }
  std::string_view rest = bytes.substr(kV1Prefix.size(), end - kV1Prefix.size());
  if (rest.find_first_of("\r\n") != std::string_view::npos)
    return invalid("a PROXY v1 line not ended by CRLF");
  std::string_view protocol;
  if (!nextField(rest, protocol)) return invalid("a PROXY v1 line without a protocol");
  ProxyHeader h = done(end + 2);
  if (protocol == "UNKNOWN") return h;  // the rest of the line is ignored
  int family = protocol == "TCP4" ? AF_INET : protocol == "TCP6" ? AF_INET6 : 0;
  if (family == 0) return invalid("a PROXY v1 protocol other than TCP4, TCP6 or UNKNOWN");
  if (bytes[end - 1] == ' ') return invalid("a PROXY v1 line with a space before its CRLF");
  std::string_view source, destination, source_port, destination_port;
  if (!nextField(rest, source) || !nextField(rest, destination) || !nextField(rest, source_port) ||
      !nextField(rest, destination_port) || !rest.empty())
    return invalid("a PROXY v1 line without exactly two addresses and two ports");
  uint16_t sport = 0, dport = 0;
  unsigned char ignored[16];
  if (!parsePort(source_port, sport) || !parsePort(destination_port, dport))
    return invalid("a PROXY v1 port that is not a number from 0 to 65535");
  if (family == AF_INET) {
    auto& in = reinterpret_cast<sockaddr_in&>(h.source);
    in.sin_family = AF_INET;
    in.sin_port = htons(sport);
    if (!parseAddress(AF_INET, source, &in.sin_addr) ||
        !parseAddress(AF_INET, destination, ignored))
      return invalid("a PROXY v1 TCP4 address that is not IPv4");
  } else {
    auto& in6 = reinterpret_cast<sockaddr_in6&>(h.source);
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(sport);
    if (!parseAddress(AF_INET6, source, &in6.sin6_addr) ||
        !parseAddress(AF_INET6, destination, ignored))
      return invalid("a PROXY v1 TCP6 address that is not IPv6");
  }
  h.has_source = true;
  return h;
}

ProxyHeader parseV2(std::string_view bytes) {
  if (bytes.size() < 16) return {};
  auto byte = [&](size_t i) { return static_cast<uint8_t>(bytes[i]); };
  uint8_t version = byte(12) >> 4;
  uint8_t command = byte(12) & 0x0f;
  uint8_t family = byte(13);
  size_t length = (static_cast<size_t>(byte(14)) << 8) | byte(15);
  if (version != 2) return invalid("a PROXY v2 header of another version");
  if (command > 1) return invalid("a PROXY v2 command other than LOCAL or PROXY");
  switch (family) {
    case 0x00:
    case 0x11:
    case 0x12:
    case 0x21:
    case 0x22:
    case 0x31:
    case 0x32:
      break;
    default:
      return invalid("a PROXY v2 address family or protocol that does not exist");
  }
  if (16 + length > kMaxProxyHeader) return invalid("a PROXY v2 header longer than 2 KiB");
  if (bytes.size() < 16 + length) return {};
  size_t addresses = family >> 4 == 1 ? 12 : family >> 4 == 2 ? 36 : family >> 4 == 3 ? 216 : 0;
  if (length < addresses) return invalid("a PROXY v2 header shorter than its addresses");
  // TLVs: each must fit in what the length announced, though none is used.
  for (size_t at = 16 + addresses; at < 16 + length;) {
    if (at + 3 > 16 + length) return invalid("a PROXY v2 TLV cut short");
    at += 3 + ((static_cast<size_t>(byte(at + 1)) << 8) | byte(at + 2));
    if (at > 16 + length) return invalid("a PROXY v2 TLV longer than the header");
  }
  ProxyHeader h = done(16 + length);
  if (command == 0) return h;  // LOCAL: the balancer's own connection (a health check)
  const char* a = bytes.data() + 16;
  if (family >> 4 == 1) {
    auto& in = reinterpret_cast<sockaddr_in&>(h.source);
    in.sin_family = AF_INET;
    std::memcpy(&in.sin_addr, a, 4);
    std::memcpy(&in.sin_port, a + 8, 2);
    h.has_source = true;
  } else if (family >> 4 == 2) {
    auto& in6 = reinterpret_cast<sockaddr_in6&>(h.source);
    in6.sin6_family = AF_INET6;
    std::memcpy(&in6.sin6_addr, a, 16);
    std::memcpy(&in6.sin6_port, a + 32, 2);
    h.has_source = true;
  }
  return h;  // UNSPEC and UNIX: the peer stands for the client
}

}  // namespace

ProxyHeader parseProxyHeader(std::string_view bytes) {
  size_t n = std::min(bytes.size(), kV2Signature.size());
  if (bytes.substr(0, n) == kV2Signature.substr(0, n)) {
    return n < kV2Signature.size() ? ProxyHeader{} : parseV2(bytes);
  }
  n = std::min(bytes.size(), kV1Prefix.size());
  if (bytes.substr(0, n) == kV1Prefix.substr(0, n)) {
    return n < kV1Prefix.size() ? ProxyHeader{} : parseV1(bytes);
  }
  return invalid("no PROXY protocol header");
}

}  // namespace crest::io
