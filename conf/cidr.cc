#include "conf/cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <charconv>
#include <cstring>

namespace crest::conf {
namespace {

constexpr uint8_t kV4Mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

// The address's family and bytes, IPv4-mapped IPv6 seen as IPv4.
int addressBytes(const sockaddr_storage& address, const uint8_t*& bytes) {
  if (address.ss_family == AF_INET) {
    bytes = reinterpret_cast<const uint8_t*>(
        &reinterpret_cast<const sockaddr_in&>(address).sin_addr.s_addr);
    return AF_INET;
  }
  if (address.ss_family != AF_INET6) return 0;
  bytes = reinterpret_cast<const sockaddr_in6&>(address).sin6_addr.s6_addr;
  if (std::memcmp(bytes, kV4Mapped, sizeof kV4Mapped) == 0) {
    bytes += sizeof kV4Mapped;
    return AF_INET;
  }
  return AF_INET6;
}

bool prefixMatches(const uint8_t* a, const uint8_t* b, int prefix) {
  int whole = prefix / 8;
  if (std::memcmp(a, b, static_cast<size_t>(whole)) != 0) return false;
  int rest = prefix % 8;
  if (rest == 0) return true;
  auto mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

}  // namespace

std::optional<CidrBlock> CidrBlock::parse(std::string_view text, std::string& error) {
  CidrBlock block;
  block.text = std::string(text);
  size_t slash = text.find('/');
  std::string address(text.substr(0, slash));
  if (inet_pton(AF_INET, address.c_str(), block.bytes.data()) == 1) {
    block.family = AF_INET;
  } else if (inet_pton(AF_INET6, address.c_str(), block.bytes.data()) == 1) {
    block.family = AF_INET6;
  } else {
    error = "expected an IPv4 or IPv6 address or block like 10.0.0.0/8 or 2001:db8::/32";
    return std::nullopt;
  }
  int bits = block.family == AF_INET ? 32 : 128;
  block.prefix = bits;
  if (slash != std::string_view::npos) {
    std::string_view digits = text.substr(slash + 1);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), block.prefix);
    if (ec != std::errc() || end != digits.data() + digits.size() || digits.empty() ||
        block.prefix < 0 || block.prefix > bits) {
      error = "the prefix length must be a number from 0 to " + std::to_string(bits);
      return std::nullopt;
    }
  }
  for (int bit = block.prefix; bit < bits; ++bit) {
    if (block.bytes[static_cast<size_t>(bit / 8)] & (0x80 >> (bit % 8))) {
      error = "host bits are set under /" + std::to_string(block.prefix) +
              " (a block starts at its first address)";
      return std::nullopt;
    }
  }
  return block;
}

bool CidrBlock::contains(const sockaddr_storage& address) const {
  const uint8_t* bytes = nullptr;
  if (addressBytes(address, bytes) != family) return false;
  return prefixMatches(bytes, this->bytes.data(), prefix);
}

bool anyContains(const std::vector<CidrBlock>& blocks, const sockaddr_storage& address) {
  for (const auto& block : blocks) {
    if (block.contains(address)) return true;
  }
  return false;
}

void readCidrList(const MapReader& reader, const char* key, std::vector<CidrBlock>& out) {
  forEachItem(reader, key, [&](const YAML::Node& n, const std::string& item, size_t) {
    std::string error;
    std::optional<CidrBlock> block;
    if (n.IsScalar()) block = CidrBlock::parse(n.Scalar(), error);
    if (!block) {
      reader.errors().add(n.Mark(), item,
                          (error.empty() ? "expected an address block" : error) + ", got " +
                              quote(n.IsScalar() ? n.Scalar() : std::string("a non-scalar")));
      return;
    }
    out.push_back(std::move(*block));
  });
}

}  // namespace crest::conf
