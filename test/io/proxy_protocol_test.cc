#include "io/proxy_protocol.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <catch2/catch.hpp>
#include <string>

#include "io/socket_io.h"

using namespace crest::io;
using Status = ProxyHeader::Status;

namespace {

std::string v2(uint8_t command, uint8_t family, std::string body) {
  std::string h("\r\n\r\n\0\r\nQUIT\n", 12);
  h.push_back(static_cast<char>(0x20 | command));
  h.push_back(static_cast<char>(family));
  h.push_back(static_cast<char>(body.size() >> 8));
  h.push_back(static_cast<char>(body.size() & 0xff));
  return h + body;
}

std::string bytes(std::initializer_list<int> values) {
  std::string s;
  for (int v : values) s.push_back(static_cast<char>(v));
  return s;
}

uint16_t port(const ProxyHeader& h) {
  return ntohs(h.source.ss_family == AF_INET
                   ? reinterpret_cast<const sockaddr_in&>(h.source).sin_port
                   : reinterpret_cast<const sockaddr_in6&>(h.source).sin6_port);
}

}  // namespace

// The examples of HAProxy's doc/proxy-protocol.txt, sections 2.1 and 2.2.
TEST_CASE("proxy protocol v1: the specification's lines") {
  std::string line = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
  auto h = parseProxyHeader(line + "GET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n");
  REQUIRE(h.status == Status::Done);
  CHECK(h.length == line.size());
  REQUIRE(h.has_source);
  CHECK(addressText(h.source) == "192.168.0.1");
  CHECK(port(h) == 56324);

  auto max4 = parseProxyHeader("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n");
  CHECK(max4.status == Status::Done);
  CHECK(max4.length == 56);

  std::string ffff = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
  auto max6 = parseProxyHeader("PROXY TCP6 " + ffff + " " + ffff + " 65535 65535\r\n");
  REQUIRE(max6.status == Status::Done);
  CHECK(max6.length == 104);
  CHECK(addressText(max6.source) == ffff);

  auto unknown = parseProxyHeader("PROXY UNKNOWN\r\n");
  CHECK(unknown.status == Status::Done);
  CHECK(unknown.length == 15);
  CHECK_FALSE(unknown.has_source);

  auto worst = parseProxyHeader("PROXY UNKNOWN " + ffff + " " + ffff + " 65535 65535\r\n");
  CHECK(worst.status == Status::Done);
  CHECK(worst.length == 107);
  CHECK_FALSE(worst.has_source);
}

TEST_CASE("proxy protocol v1: a line comes whole or waits, any deviation is refused") {
  std::string line = "PROXY TCP6 2001:db8::1 2001:db8::2 1234 80\r\n";
  for (size_t n = 1; n < line.size(); ++n) {
    INFO(n);
    CHECK(parseProxyHeader(line.substr(0, n)).status == Status::Incomplete);
  }
  CHECK(parseProxyHeader(line).status == Status::Done);
  for (const char* bad : {
           "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\n",      // LF alone
           "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\rX\n",   // CR alone
           "PROXY  TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",   // two spaces
           "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443 \r\n",   // trailing space
           "PROXY TCP4 192.168.0.1 192.168.0.11 56324\r\n",        // a port missing
           "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443 1\r\n",  // a field too many
           "PROXY TCP4 192.168.0.01 192.168.0.11 56324 443\r\n",   // leading zero
           "PROXY TCP4 192.168.0.1 192.168.0.11 056324 443\r\n",   // leading zero in a port
           "PROXY TCP4 192.168.0.1 192.168.0.11 65536 443\r\n",    // port out of range
           "PROXY TCP4 2001:db8::1 192.168.0.11 1 443\r\n",        // IPv6 as TCP4
           "PROXY TCP6 192.168.0.1 2001:db8::2 1 443\r\n",         // IPv4 as TCP6
           "PROXY UDP4 192.168.0.1 192.168.0.11 56324 443\r\n",    // another protocol
           "PROXY tcp4 192.168.0.1 192.168.0.11 56324 443\r\n",    // case matters
           "PROXY\r\n",
           "GET / HTTP/1.1\r\n",  // no header at all
           "proxy TCP4 1.1.1.1 1.1.1.1 1 1\r\n",
       }) {
    INFO(bad);
    CHECK(parseProxyHeader(bad).status == Status::Invalid);
  }
  // No CRLF within 107 bytes.
  CHECK(parseProxyHeader("PROXY UNKNOWN " + std::string(100, 'a')).status == Status::Invalid);
}

TEST_CASE("proxy protocol v2: addresses, LOCAL, TLVs skipped, lengths checked") {
  std::string v4 = bytes({192, 0, 2, 1, 198, 51, 100, 7, 0xdc, 0x04, 0x01, 0xbb});
  auto h = parseProxyHeader(v2(1, 0x11, v4) + "GET /");
  REQUIRE(h.status == Status::Done);
  CHECK(h.length == 28);
  REQUIRE(h.has_source);
  CHECK(addressText(h.source) == "192.0.2.1");
  CHECK(port(h) == 56324);

  std::string v6(16, '\0');
  v6[0] = 0x20, v6[1] = 0x01, v6[2] = 0x0d, v6[3] = static_cast<char>(0xb8), v6[15] = 5;
  auto h6 = parseProxyHeader(v2(1, 0x21, v6 + std::string(16, '\0') + bytes({0, 80, 1, 187})));
  REQUIRE(h6.status == Status::Done);
  CHECK(addressText(h6.source) == "2001:db8::5");
  CHECK(port(h6) == 80);

  // A TLV (AWS's VPC endpoint id, type 0xEA) after the addresses is skipped.
  std::string tlv = bytes({0xea, 0, 5}) + "vpce1";
  auto with_tlv = parseProxyHeader(v2(1, 0x11, v4 + tlv));
  REQUIRE(with_tlv.status == Status::Done);
  CHECK(with_tlv.length == 16 + 12 + 8);

  // LOCAL (a balancer's health check): the peer stands for the client,
  // whatever the addresses say.
  auto local = parseProxyHeader(v2(0, 0x11, v4));
  CHECK(local.status == Status::Done);
  CHECK_FALSE(local.has_source);
  auto local_unspec = parseProxyHeader(v2(0, 0x00, ""));
  CHECK(local_unspec.status == Status::Done);
  CHECK(local_unspec.length == 16);

  std::string whole = v2(1, 0x11, v4 + tlv);
  for (size_t n = 1; n < whole.size(); ++n) {
    INFO(n);
    CHECK(parseProxyHeader(whole.substr(0, n)).status == Status::Incomplete);
  }
}

TEST_CASE("proxy protocol v2: what breaks the format is refused") {
  std::string v4 = bytes({192, 0, 2, 1, 198, 51, 100, 7, 0xdc, 0x04, 0x01, 0xbb});
  std::string version1 = v2(1, 0x11, v4);
  version1[12] = 0x11;
  CHECK(parseProxyHeader(version1).status == Status::Invalid);
  CHECK(parseProxyHeader(v2(2, 0x11, v4)).status == Status::Invalid);  // command 2
  CHECK(parseProxyHeader(v2(1, 0x41, v4)).status == Status::Invalid);  // family 4
  CHECK(parseProxyHeader(v2(1, 0x13, v4)).status == Status::Invalid);  // protocol 3
  CHECK(parseProxyHeader(v2(1, 0x21, v4)).status == Status::Invalid);  // IPv6 in 12 bytes
  CHECK(parseProxyHeader(v2(1, 0x11, v4 + bytes({0xea, 0, 9}) + "short")).status ==
        Status::Invalid);  // TLV past the end
  CHECK(parseProxyHeader(v2(1, 0x11, v4 + bytes({0xea, 0}))).status == Status::Invalid);
  CHECK(parseProxyHeader(v2(1, 0x11, v4 + std::string(3000, '\0'))).status == Status::Invalid);
  std::string signature("\r\n\r\n\0\r\nQUIT\n", 12);
  CHECK(parseProxyHeader(signature.substr(0, 5) + "X").status == Status::Invalid);
}
