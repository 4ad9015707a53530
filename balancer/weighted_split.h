#pragma once
// Chooses one of several targets (a split's pools) by integer weight. A
// 64-bit key is read as a fraction of 2^64 and mapped onto the cumulative
// weights, so the same key always lands on the same target while the weights
// are unchanged, and when one target's share grows from the end of the range
// (a canary listed last going from 5% to 10%) every key it had stays with it.
// Built once per configuration; pick() is const and thread-safe.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace crest::balancer {

class WeightedSplit {
 public:
  explicit WeightedSplit(std::vector<uint32_t> weights);

  // Index of the chosen target; never one with weight 0 (requires a total above 0).
  size_t pick(uint64_t key) const;
  // Like pick(), but among the targets `usable(i)` accepts; returns size() when none is.
  template <typename Usable>
  size_t pickUsable(uint64_t key, Usable&& usable) const;

  size_t size() const { return bounds_.size(); }

 private:
  static uint64_t rehash(uint64_t key) {
    key = (key ^ (key >> 30)) * 0xbf58476d1ce4e5b9ull;
    key = (key ^ (key >> 27)) * 0x94d049bb133111ebull;
    return key ^ (key >> 31);
  }

  std::vector<uint64_t> bounds_;  // cumulative weights: target i covers [bounds_[i-1], bounds_[i])
  uint64_t total_ = 0;
};

template <typename Usable>
size_t WeightedSplit::pickUsable(uint64_t key, Usable&& usable) const {
  size_t first = pick(key);
  if (usable(first)) return first;
  // The chosen target cannot serve: re-split the key over the others that can,
  // by their weights, so the fallback traffic spreads like the rest.
  uint64_t total = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    uint64_t w = bounds_[i] - (i ? bounds_[i - 1] : 0);
    if (i != first && w > 0 && usable(i)) total += w;
  }
  if (total == 0) return bounds_.size();
  // A fresh hash of the key: the key itself lies in the chosen target's range,
  // and would land its whole share on one neighbour.
  uint64_t point =
      static_cast<uint64_t>((static_cast<unsigned __int128>(rehash(key)) * total) >> 64);
  for (size_t i = 0; i < bounds_.size(); ++i) {
    uint64_t w = bounds_[i] - (i ? bounds_[i - 1] : 0);
    if (i == first || w == 0 || !usable(i)) continue;
    if (point < w) return i;
    point -= w;
  }
  return bounds_.size();
}

}  // namespace crest::balancer
