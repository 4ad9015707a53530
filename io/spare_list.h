#pragma once
// A few objects of one kind kept by one thread for reuse: what a connection
// gives back when it goes idle waits here for the next request, so that a
// keep-alive request allocates nothing. At most `Capacity` wait; more would
// be memory held for a burst that has passed.

#include <cstddef>
#include <vector>

namespace crest::io {

template <typename T, void (*Free)(T*), size_t Capacity>
class SpareList {
 public:
  SpareList() = default;
  ~SpareList() { clear(); }
  SpareList(const SpareList&) = delete;
  SpareList& operator=(const SpareList&) = delete;

  // The one given back last, or null.
  T* take() {
    if (spares_.empty()) return nullptr;
    T* spare = spares_.back();
    spares_.pop_back();
    return spare;
  }

  // Frees every spare now.
  void clear() {
    for (T* spare : spares_) Free(spare);
    spares_.clear();
  }

  void give(T* object) {
    if (spares_.size() < Capacity) {
      spares_.push_back(object);
    } else {
      Free(object);
    }
  }

 private:
  std::vector<T*> spares_;
};

}  // namespace crest::io
