#pragma once
// The PROXY protocol header (HAProxy's doc/proxy-protocol.txt, v1 and v2)
// that an L4 balancer sends before a connection's own bytes, to say whom
// the connection is for. Parsed strictly: anything that is not exactly a
// header closes the connection, since a receiver that guessed would let
// clients spoof their address.

#include <sys/socket.h>

#include <cstddef>
#include <string_view>

namespace crest::io {

struct ProxyHeader {
  enum class Status {
    Incomplete,  // a valid beginning: wait for more bytes
    Invalid,     // not a header: close the connection
    Done,        // a whole header of `length` bytes
  };
  Status status = Status::Incomplete;
  size_t length = 0;
  // The client's address and port; false for v1 UNKNOWN, v2 LOCAL and
  // families without one: the connection's peer is the client then.
  bool has_source = false;
  sockaddr_storage source{};
  const char* error = "";  // why it is Invalid
};

// The longest header crest takes: a v1 line is at most 107 bytes; a v2
// header 16 bytes plus its addresses and TLVs, here at most 2 KiB.
constexpr size_t kMaxProxyHeader = 16 + 2048;

// Reads the header at the start of `bytes` (the connection's first bytes,
// not consumed).
ProxyHeader parseProxyHeader(std::string_view bytes);

}  // namespace crest::io
