#include "conf/units.h"

#include <charconv>
#include <cstdint>
#include <initializer_list>

namespace crest::conf {
namespace {

// Splits "123unit" into its number and unit; nullopt without leading digits or on overflow.
std::optional<std::pair<uint64_t, std::string_view>> splitNumber(std::string_view text) {
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end == text.data()) return std::nullopt;
  return std::make_pair(value, text.substr(end - text.data()));
}

struct Unit {
  std::string_view name;
  uint64_t factor;
};

// "123unit" scaled by the factor of its unit, at most `max`; "0" alone is
// zero. nullopt for a unit not in `units` or on overflow.
std::optional<uint64_t> parseScaled(std::string_view text, std::initializer_list<Unit> units,
                                    uint64_t max) {
  auto parts = splitNumber(text);
  if (!parts) return std::nullopt;
  auto [value, unit] = *parts;
  if (unit.empty() && value == 0) return 0;
  for (const Unit& u : units) {
    if (u.name != unit) continue;
    uint64_t scaled = 0;
    if (__builtin_mul_overflow(value, u.factor, &scaled) || scaled > max) return std::nullopt;
    return scaled;
  }
  return std::nullopt;
}

constexpr uint64_t kMaxDurationMs = uint64_t{1} << 40;

}  // namespace

std::optional<Duration> parseDuration(std::string_view text) {
  auto ms = parseScaled(text, {{"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 3600 * 1000}},
                        kMaxDurationMs);
  if (!ms) return std::nullopt;
  return Duration(static_cast<int64_t>(*ms));
}

std::optional<std::chrono::microseconds> parseFineDuration(std::string_view text) {
  auto us = parseScaled(text, {{"us", 1}, {"ms", 1000}, {"s", 1000 * 1000}}, kMaxDurationMs * 1000);
  if (!us) return std::nullopt;
  return std::chrono::microseconds(static_cast<int64_t>(*us));
}

std::optional<uint64_t> parseSize(std::string_view text) {
  return parseScaled(text,
                     {{"", 1},
                      {"B", 1},
                      {"KiB", uint64_t{1} << 10},
                      {"MiB", uint64_t{1} << 20},
                      {"GiB", uint64_t{1} << 30}},
                     UINT64_MAX);
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

bool portOutOfRange(std::string_view text) {
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  std::string_view digits = text.substr(colon + 1);
  if (digits.empty() || digits.size() > 19) return false;
  uint64_t port = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
  if (ec != std::errc() || end != digits.data() + digits.size()) return false;
  return (port == 0 || port > 65535) &&
         parseHostPort(std::string(text.substr(0, colon + 1)) + "1").has_value();
}

std::string formatDuration(Duration d) {
  auto ms = d.count();
  if (ms != 0 && ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

}  // namespace crest::conf
