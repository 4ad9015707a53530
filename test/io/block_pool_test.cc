#include "io/block_pool.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <vector>

using crest::io::BlockPool;

TEST_CASE("a released block is the next one given for a size of its class") {
  BlockPool pool;
  void* a = pool.allocate(100);
  REQUIRE(a != nullptr);
  CHECK(reinterpret_cast<uintptr_t>(a) % 16 == 0);
  std::memset(a, 0xab, 100);
  pool.release(a);
  CHECK(pool.kept() == 1);
  CHECK(pool.allocate(90) == a);  // 90 and 100 bytes share a class
  CHECK(pool.kept() == 0);
  void* other = pool.allocate(300);  // another class: not that block
  CHECK(other != a);
  pool.release(other);
  pool.release(a);
  CHECK(pool.kept() == 2);
}

TEST_CASE("large blocks are malloc's and never kept") {
  BlockPool pool;
  void* big = pool.allocate(64 * 1024);
  REQUIRE(big != nullptr);
  std::memset(big, 1, 64 * 1024);
  pool.release(big);
  CHECK(pool.kept() == 0);
  pool.release(nullptr);
}

TEST_CASE("resize keeps the contents, across classes and into a large block") {
  BlockPool pool;
  auto* p = static_cast<char*>(pool.resize(nullptr, 10));
  REQUIRE(p != nullptr);
  std::memcpy(p, "0123456789", 10);
  CHECK(pool.resize(p, 20) == p);  // still room in its block
  p = static_cast<char*>(pool.resize(p, 1000));
  REQUIRE(p != nullptr);
  CHECK(std::memcmp(p, "0123456789", 10) == 0);
  p = static_cast<char*>(pool.resize(p, 100000));
  REQUIRE(p != nullptr);
  CHECK(std::memcmp(p, "0123456789", 10) == 0);
  p[99999] = 'x';
  p = static_cast<char*>(pool.resize(p, 200000));
  REQUIRE(p != nullptr);
  CHECK(std::memcmp(p, "0123456789", 10) == 0);
  CHECK(p[99999] == 'x');
  pool.release(p);
}

TEST_CASE("zeroed blocks are zero even when reused, and an overflowing count is refused") {
  BlockPool pool;
  void* a = pool.allocate(200);
  std::memset(a, 0xff, 200);
  pool.release(a);
  auto* z = static_cast<unsigned char*>(pool.allocateZeroed(20, 10));
  REQUIRE(z == a);
  for (int i = 0; i < 200; ++i) CHECK(z[i] == 0);
  pool.release(z);
  CHECK(pool.allocateZeroed(SIZE_MAX / 2, 4) == nullptr);
  CHECK(pool.allocate(SIZE_MAX - 4) == nullptr);
}

TEST_CASE("a class keeps at most a megabyte of free blocks") {
  BlockPool pool;
  std::vector<void*> blocks;
  for (int i = 0; i < 1000; ++i) blocks.push_back(pool.allocate(2000));  // 2 KiB blocks
  for (void* b : blocks) pool.release(b);
  CHECK(pool.kept() == 512);
}
