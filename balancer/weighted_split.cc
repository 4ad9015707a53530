#include "balancer/weighted_split.h"

#include <algorithm>

namespace crest::balancer {

WeightedSplit::WeightedSplit(std::vector<uint32_t> weights) {
  for (uint32_t w : weights) {
    total_ += w;
    bounds_.push_back(total_);
  }
}

size_t WeightedSplit::pick(uint64_t key) const {
  // key / 2^64 * total, without the bias of a modulo.
  uint64_t point = static_cast<uint64_t>((static_cast<unsigned __int128>(key) * total_) >> 64);
  return static_cast<size_t>(std::upper_bound(bounds_.begin(), bounds_.end(), point) -
                             bounds_.begin());
}

}  // namespace crest::balancer
