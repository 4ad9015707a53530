#pragma once
// Socket helpers for the raw edge-triggered connection layer: listening
// sockets, non-blocking connects, and read/write loops between a socket and
// an evbuffer.

#include <event2/buffer.h>
#include <sys/socket.h>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "conf/units.h"

namespace crest::io {

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

// Resolves host:port (numeric or a name); false with `error` set.
bool resolveAddress(const conf::HostPort& hp, SocketAddress& out, std::string& error);

// A bound, listening, non-blocking socket (SO_REUSEADDR, and SO_REUSEPORT when
// `reuse_port` so each worker can own one) whose accepted sockets have
// TCP_NODELAY; -1 with `error` set.
int listenSocket(const SocketAddress& addr, bool reuse_port, std::string& error);

// True when a socket already listens on `addr`. SO_REUSEPORT would otherwise
// let a second crest of the same user share a port with the first and
// silently take half of its connections.
bool addressTaken(const SocketAddress& addr);

// The address as text without port ("127.0.0.1", "::1"), and a hash of its bytes.
std::string addressText(const sockaddr_storage& addr);
// "192.0.2.1:8080" or "[2001:db8::1]:8080".
std::string addressWithPort(const sockaddr_storage& addr);
// An IPv4 or IPv6 address as text (no port, no brackets); false for anything else.
bool parseAddress(std::string_view text, sockaddr_storage& out);
uint64_t addressHash(const sockaddr_storage& addr);

enum class IoResult { Progress, WouldBlock, Closed, Error };

// A worker's memory for small reads (beginRead); one per worker thread.
struct ReadScratch {
  static constexpr size_t kSize = 64 * 1024;
  std::unique_ptr<char[]> bytes = std::make_unique<char[]>(kSize);
};

// Where one read of a connection lands. After a small read the next goes
// into the worker's `scratch` and what came is copied to the buffer. A read
// in place takes the buffer's own space, and libevent backs 64 KiB of it
// with a 128 KiB block (a TLS record's 16 KiB with 32 KiB), allocated, and
// freed once the message has gone on, for every message: 730 instructions
// of a 0 B keep-alive request. After a large read (a body's: 4 KiB or more)
// the next one goes in place, as copying it would cost more than the block.
// `reads_large` is the connection's record of its last read.
struct ReadSpace {
  char* data = nullptr;  // null when the buffer cannot grow
  size_t size = 0;
  evbuffer_iovec reserved{};  // in place: the buffer's space
  bool inPlace() const { return reserved.iov_base != nullptr; }
};
ReadSpace beginRead(evbuffer* buffer, size_t limit, ReadScratch& scratch, bool reads_large);
// Keeps in `buffer` the `got` bytes read (gives the space back for none or
// an error, leaving errno as the read set it) and updates `reads_large`;
// false when the buffer cannot grow. With `kept`: as readInto says.
bool endRead(evbuffer* buffer, ReadSpace& space, long got, bool& reads_large,
             std::string_view* kept = nullptr);

// Reads until the socket is drained, it closes, or `buffer` holds `cap` bytes.
// With `kept`, a read that lands in the scratch memory for an empty buffer
// and drains the socket stays there: `kept` shows it, for the caller to parse
// at once and add what it leaves to `buffer` before the next read of the
// worker. A head read so costs the buffer no chain (its allocation, its
// copy, its free: 450 instructions).
// Returns WouldBlock when drained, Progress when it stopped at `cap`. A read
// shorter than the space offered counts as drained, without the extra read
// that would say EAGAIN (a third of the system calls of a small exchange):
// with edge-triggered events, data that arrives later brings a new edge. A
// peer's FIN that came with the last data brings none, so once the event
// loop has reported the peer closing (EV_CLOSED), pass `until_eof` to read
// on to the end. Reads land as beginRead says.
IoResult readInto(int fd, evbuffer* buffer, size_t cap, size_t& bytes_read, bool until_eof,
                  ReadScratch& scratch, bool& reads_large, std::string_view* kept = nullptr);

// Writes `head`, then `buffer`, until both are empty or the socket would
// block; what is sent leaves them. A message's head waits in a string rather
// than in the buffer: added to an empty evbuffer, it would cost a chain's
// allocation and, once sent, its free (a quarter of the evbuffer work of a
// small exchange), and it goes out with the body in one call all the same.
IoResult writeFrom(int fd, std::string& head, evbuffer* buffer, size_t& bytes_written);

}  // namespace crest::io
