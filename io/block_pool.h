#pragma once
// Memory blocks kept by one thread for reuse, by size class: what a library
// allocates and frees for every request (nghttp2: a stream, its frames and
// their fields) comes from a free list instead of malloc. A block larger than
// the largest class is malloc's; each class keeps at most kClassBytes free,
// the rest goes back to malloc. One thread only.

#include <array>
#include <cstddef>

namespace crest::io {

class BlockPool {
 public:
  BlockPool() = default;
  ~BlockPool();
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  // malloc's, calloc's and realloc's contracts (null when memory runs out).
  void* allocate(size_t size);
  void* allocateZeroed(size_t count, size_t size);
  void* resize(void* block, size_t size);
  void release(void* block);

  // Blocks waiting for reuse, all classes.
  size_t kept() const;

 private:
  // Every block starts with this, 16 bytes so that what follows keeps malloc's alignment.
  struct alignas(16) Header {
    size_t size_class;  // kClasses: a large block, malloc's own
    size_t capacity;    // bytes after the header
  };
  struct FreeBlock {
    FreeBlock* next;
  };
  static constexpr size_t kSmallest = 64;  // header included
  static constexpr size_t kClasses = 6;    // 64 B .. 2 KiB
  static constexpr size_t kClassBytes = size_t{1} << 20;

  static size_t classOf(size_t size);
  static Header* headerOf(void* block) { return static_cast<Header*>(block) - 1; }

  std::array<FreeBlock*, kClasses> free_{};
  std::array<size_t, kClasses> kept_{};
};

}  // namespace crest::io
