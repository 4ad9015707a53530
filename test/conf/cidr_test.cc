#include "conf/cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <catch2/catch.hpp>

using namespace crest::conf;

namespace {

sockaddr_storage address(const char* text) {
  sockaddr_storage a{};
  auto& in = reinterpret_cast<sockaddr_in&>(a);
  auto& in6 = reinterpret_cast<sockaddr_in6&>(a);
  if (inet_pton(AF_INET, text, &in.sin_addr) == 1) {
    in.sin_family = AF_INET;
  } else {
    REQUIRE(inet_pton(AF_INET6, text, &in6.sin6_addr) == 1);
    in6.sin6_family = AF_INET6;
  }
  return a;
}

CidrBlock block(const char* text) {
  std::string error;
  auto b = CidrBlock::parse(text, error);
  INFO(text << ": " << error);
  REQUIRE(b);
  return *b;
}

}  // namespace

TEST_CASE("cidr: IPv4 and IPv6 blocks hold the addresses under their prefix, no others") {
  CHECK(block("10.0.0.0/8").contains(address("10.255.1.2")));
  CHECK_FALSE(block("10.0.0.0/8").contains(address("11.0.0.0")));
  CHECK(block("192.168.1.128/25").contains(address("192.168.1.200")));
  CHECK_FALSE(block("192.168.1.128/25").contains(address("192.168.1.127")));
  CHECK(block("203.0.113.7").contains(address("203.0.113.7")));
  CHECK_FALSE(block("203.0.113.7").contains(address("203.0.113.8")));
  CHECK(block("0.0.0.0/0").contains(address("1.2.3.4")));
  CHECK(block("2001:db8::/32").contains(address("2001:db8:ffff::1")));
  CHECK_FALSE(block("2001:db8::/32").contains(address("2001:db9::1")));
  CHECK(block("::1/128").contains(address("::1")));
  // Families never match each other, except an IPv4-mapped IPv6 address.
  CHECK_FALSE(block("::/0").contains(address("10.0.0.1")));
  CHECK_FALSE(block("0.0.0.0/0").contains(address("2001:db8::1")));
  CHECK(block("10.0.0.0/8").contains(address("::ffff:10.1.2.3")));
}

TEST_CASE("cidr: what is not a block is refused with a reason") {
  for (const char* bad : {"10.0.0.0/33", "10.0.0.0/", "10.0.0.0/x", "10.0.0.1/8", "2001:db8::1/32",
                          "::/129", "example.com", "10.0.0", "", "010.0.0.1"}) {
    std::string error;
    INFO(bad);
    CHECK_FALSE(CidrBlock::parse(bad, error));
    CHECK_FALSE(error.empty());
  }
}
