#pragma once
// Parsing of the scalar value types used in the configuration file:
// durations ("250ms", "2s", "1m"; "50us" where finer), sizes ("16KiB", "1MiB") and addresses
// ("host:port", "[::1]:port"). Each returns nullopt on malformed input; the
// caller owns the error message because it knows the field path.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace crest::conf {

using Duration = std::chrono::milliseconds;

struct HostPort {
  std::string host;  // without brackets for IPv6
  uint16_t port = 0;
  std::string text;  // exactly as written in the configuration

  bool operator==(const HostPort& other) const { return host == other.host && port == other.port; }
};

// Integer followed by ms, s, m or h. "0" alone is zero.
std::optional<Duration> parseDuration(std::string_view text);

// Integer followed by us, ms or s, for settings finer than a millisecond.
std::optional<std::chrono::microseconds> parseFineDuration(std::string_view text);

// Integer bytes, optionally followed by B, KiB, MiB or GiB.
std::optional<uint64_t> parseSize(std::string_view text);

// host:port, [v6]:port. The port must be 1..65535; the host non-empty.
std::optional<HostPort> parseHostPort(std::string_view text);
// Whether `text` is host:port but for a port of 0 or over 65535 (for a precise message).
bool portOutOfRange(std::string_view text);

// "1500ms" style rendering used in logs and messages.
std::string formatDuration(Duration d);

}  // namespace crest::conf
