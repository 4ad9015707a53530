#include "conf/units.h"

#include <charconv>

namespace crest::conf {
namespace {

// Splits "123unit" into its number and unit; nullopt without leading digits or on overflow.
std::optional<std::pair<uint64_t, std::string_view>> splitNumber(std::string_view text) {
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end == text.data()) return std::nullopt;
  return std::make_pair(value, text.substr(end - text.data()));
}

bool multiplyChecked(uint64_t value, uint64_t factor, uint64_t& out) {
  return !__builtin_mul_overflow(value, factor, &out);
}

}  // namespace

std::optional<Duration> parseDuration(std::string_view text) {
  auto parts = splitNumber(text);
  if (!parts) return std::nullopt;
  auto [value, unit] = *parts;
  uint64_t factor = 0;
  if (unit == "ms") {
    factor = 1;
  } else if (unit == "s") {
    factor = 1000;
  } else if (unit == "m") {
    factor = 60 * 1000;
  } else if (unit == "h") {
    factor = 3600 * 1000;
  } else if (unit.empty() && value == 0) {
    factor = 1;
  } else {
    return std::nullopt;
  }
  uint64_t ms = 0;
  if (!multiplyChecked(value, factor, ms) || ms > uint64_t{1} << 40) return std::nullopt;
  return Duration(static_cast<int64_t>(ms));
}

std::optional<uint64_t> parseSize(std::string_view text) {
  auto parts = splitNumber(text);
  if (!parts) return std::nullopt;
  auto [value, unit] = *parts;
  uint64_t factor = 0;
  if (unit.empty() || unit == "B") {
    factor = 1;
  } else if (unit == "KiB") {
    factor = uint64_t{1} << 10;
  } else if (unit == "MiB") {
    factor = uint64_t{1} << 20;
  } else if (unit == "GiB") {
    factor = uint64_t{1} << 30;
  } else {
    return std::nullopt;
  }
  uint64_t bytes = 0;
  if (!multiplyChecked(value, factor, bytes)) return std::nullopt;
  return bytes;
}

std::optional<HostPort> parseHostPort(std::string_view text) {
  HostPort out;
  out.text = std::string(text);
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    out.host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
    if (out.host.find(':') == std::string::npos) return std::nullopt;
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    out.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
    // An unbracketed IPv6 address would be ambiguous with the port separator.
    if (out.host.find(':') != std::string::npos) return std::nullopt;
  }
  if (out.host.empty() || port_text.empty()) return std::nullopt;
  for (char c : out.host) {
    if (c <= ' ' || c == '/' || c == '[' || c == ']') return std::nullopt;
  }
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port == 0 ||
      port > 65535) {
    return std::nullopt;
  }
  out.port = static_cast<uint16_t>(port);
  return out;
}

std::string formatDuration(Duration d) {
  auto ms = d.count();
  if (ms != 0 && ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

}  // namespace crest::conf
