#include "io/block_pool.h"

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <limits>

namespace crest::io {

BlockPool::~BlockPool() {
  for (FreeBlock*& list : free_) {
    while (list != nullptr) {
      FreeBlock* next = list->next;
      std::free(list);
      list = next;
    }
  }
}

size_t BlockPool::classOf(size_t size) {
  if (size > std::numeric_limits<size_t>::max() / 2) return kClasses;
  size_t needed = size + sizeof(Header);
  if (needed <= kSmallest) return 0;
  size_t size_class = std::bit_width(needed - 1) - std::bit_width(kSmallest - 1);
  return size_class < kClasses ? size_class : kClasses;
}

void* BlockPool::allocate(size_t size) {
  size_t size_class = classOf(size);
  void* base;
  size_t capacity;
  if (size_class == kClasses) {
    if (size > std::numeric_limits<size_t>::max() - sizeof(Header)) return nullptr;
    base = std::malloc(sizeof(Header) + size);
    capacity = size;
  } else {
    capacity = (kSmallest << size_class) - sizeof(Header);
    if (FreeBlock* spare = free_[size_class]) {
      free_[size_class] = spare->next;
      --kept_[size_class];
      base = spare;
    } else {
      base = std::malloc(kSmallest << size_class);
    }
  }
  if (base == nullptr) return nullptr;
  auto* header = static_cast<Header*>(base);
  header->size_class = size_class;
  header->capacity = capacity;
  return header + 1;
}

void* BlockPool::allocateZeroed(size_t count, size_t size) {
  if (size != 0 && count > std::numeric_limits<size_t>::max() / size) return nullptr;
  void* block = allocate(count * size);
  if (block != nullptr) std::memset(block, 0, count * size);
  return block;
}

void* BlockPool::resize(void* block, size_t size) {
  if (block == nullptr) return allocate(size);
  Header* header = headerOf(block);
  if (size <= header->capacity) return block;
  if (header->size_class == kClasses && classOf(size) == kClasses) {
    auto* moved = static_cast<Header*>(std::realloc(header, sizeof(Header) + size));
    if (moved == nullptr) return nullptr;
    moved->capacity = size;
    return moved + 1;
  }
  void* moved = allocate(size);
  if (moved == nullptr) return nullptr;
  std::memcpy(moved, block, std::min(size, header->capacity));
  release(block);
  return moved;
}

void BlockPool::release(void* block) {
  if (block == nullptr) return;
  Header* header = headerOf(block);
  size_t size_class = header->size_class;
  if (size_class == kClasses || (kept_[size_class] + 1) * (kSmallest << size_class) > kClassBytes) {
    std::free(header);
    return;
  }
  auto* spare = reinterpret_cast<FreeBlock*>(header);
  spare->next = free_[size_class];
  free_[size_class] = spare;
  ++kept_[size_class];
}

size_t BlockPool::kept() const {
  size_t all = 0;
  for (size_t n : kept_) all += n;
  return all;
}

}  // namespace crest::io
