#pragma once
// TLS on the raw edge-triggered connection layer: SSL_do_handshake, SSL_read
// and SSL_write straight on the socket, with the same results as the plain
// read/write loops of socket_io.h so a connection treats both alike.

#include <event2/buffer.h>
#include <openssl/ssl.h>

#include <memory>

#include "io/socket_io.h"

namespace crest::io {

// Puts `ssl` on the socket `fd` for the functions below. It reads ahead (one
// read takes in every record that has arrived) and notes whether its last
// read came up short, so that tlsRead stops without the extra read that
// would only say EAGAIN, as readInto does: a record header and body cost
// one read instead of two, plus none for the EAGAIN.
void tlsAttach(SSL* ssl, int fd);

// Progress when the handshake is complete, WouldBlock while it waits for the peer.
IoResult tlsHandshake(SSL* ssl);

// Reads decrypted bytes until the socket is drained, the peer closes, or
// `buffer` holds `cap` bytes; `until_eof` and where they land as for readInto.
IoResult tlsRead(SSL* ssl, evbuffer* buffer, size_t cap, size_t& bytes_read, bool until_eof,
                 ReadScratch& scratch, bool& reads_large);

// A worker's memory for tlsWrite: where a record's bytes are gathered, and
// where records wait to go out together. One per worker thread.
struct TlsScratch {
  static constexpr size_t kRecord = 16 * 1024;
  static constexpr size_t kBatch = 64 * 1024;
  std::unique_ptr<char[]> record = std::make_unique<char[]>(kRecord);
  std::unique_ptr<char[]> batch = std::make_unique<char[]>(kBatch);
};

// Writes `buffer` as TLS records of up to 16 KiB (small chains coalesced
// into one record instead of a record each), sent in batches of up to
// 64 KiB. What the socket does not take of the last batch is held by the
// connection's TLS and sent first by the next call: WouldBlock then.
IoResult tlsWrite(SSL* ssl, evbuffer* buffer, size_t& bytes_written, TlsScratch& scratch);

// Encrypted bytes tlsWrite holds for the socket: the connection still has
// them to send.
size_t tlsHeldBytes(SSL* ssl);

}  // namespace crest::io
