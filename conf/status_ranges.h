#pragma once
// HTTP status code sets such as "200-399", "200-299,304" or "2xx".

#include <optional>
#include <string_view>
#include <vector>

namespace crest::conf {

struct StatusRange {
  int low = 0;
  int high = 0;  // inclusive
  bool operator==(const StatusRange&) const = default;
};

class StatusRanges {
 public:
  StatusRanges() = default;
  explicit StatusRanges(std::vector<StatusRange> ranges) : ranges_(std::move(ranges)) {}

  // nullopt on a malformed list or a code outside 100..599.
  static std::optional<StatusRanges> parse(std::string_view text);

  bool contains(int status) const {
    for (const auto& r : ranges_) {
      if (status >= r.low && status <= r.high) return true;
    }
    return false;
  }

  bool operator==(const StatusRanges&) const = default;

 private:
  std::vector<StatusRange> ranges_;
};

}  // namespace crest::conf
