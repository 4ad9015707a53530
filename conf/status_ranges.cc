#include "conf/status_ranges.h"

#include <charconv>
#include <string>

namespace crest::conf {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

std::optional<int> parseCode(std::string_view s) {
  int code = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), code);
  if (ec != std::errc() || end != s.data() + s.size() || code < 100 || code > 599) {
    return std::nullopt;
  }
  return code;
}

std::optional<StatusRange> parseItem(std::string_view item) {
  if (item.size() == 3 && (item[1] == 'x' || item[1] == 'X') &&
      (item[2] == 'x' || item[2] == 'X')) {
    auto first = parseCode(std::string(1, item[0]) + "00");
    if (!first) return std::nullopt;
    return StatusRange{*first, *first + 99};
  }
  auto dash = item.find('-');
  if (dash == std::string_view::npos) {
    auto code = parseCode(item);
    if (!code) return std::nullopt;
    return StatusRange{*code, *code};
  }
  auto low = parseCode(trim(item.substr(0, dash)));
  auto high = parseCode(trim(item.substr(dash + 1)));
  if (!low || !high || *low > *high) return std::nullopt;
  return StatusRange{*low, *high};
}

}  // namespace

std::optional<StatusRanges> StatusRanges::parse(std::string_view text) {
  std::vector<StatusRange> ranges;
  while (true) {
    auto comma = text.find(',');
    auto item = parseItem(trim(text.substr(0, comma)));
    if (!item) return std::nullopt;
    ranges.push_back(*item);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return StatusRanges(std::move(ranges));
}

}  // namespace crest::conf
