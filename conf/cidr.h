#pragma once
// Address blocks in CIDR notation ("10.0.0.0/8", "2001:db8::/32", or one
// address), for trusted_proxies and a route's access lists. An IPv4 address
// a dual-stack socket reports as ::ffff:a.b.c.d matches IPv4 blocks.

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "conf/yaml_reader.h"

namespace crest::conf {

struct CidrBlock {
  int family = 0;  // AF_INET or AF_INET6
  std::array<uint8_t, 16> bytes{};
  int prefix = 0;  // bits that must match
  std::string text;
  bool operator==(const CidrBlock& o) const {
    return family == o.family && bytes == o.bytes && prefix == o.prefix;
  }

  // Null for anything but an address with an optional /prefix in range;
  // host bits set under the prefix are refused too ("10.0.0.1/8" is a typo
  // of either "10.0.0.1" or "10.0.0.0/8").
  static std::optional<CidrBlock> parse(std::string_view text, std::string& error);
  bool contains(const sockaddr_storage& address) const;
};

bool anyContains(const std::vector<CidrBlock>& blocks, const sockaddr_storage& address);

// Reads `key`, a list of blocks, reporting each bad one at its line.
void readCidrList(const MapReader& reader, const char* key, std::vector<CidrBlock>& out);

}  // namespace crest::conf
