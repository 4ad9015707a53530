#pragma once
// TLS on the raw edge-triggered connection layer: SSL_do_handshake, SSL_read
// and SSL_write straight on the socket, with the same results as the plain
// read/write loops of socket_io.h so a connection treats both alike.

#include <event2/buffer.h>
#include <openssl/ssl.h>

#include "proxy/socket_io.h"

namespace crest::proxy {

// Progress when the handshake is complete, WouldBlock while it waits for the peer.
IoResult tlsHandshake(SSL* ssl);

// Reads decrypted bytes until the socket would block, the peer closes, or
// `buffer` holds `cap` bytes.
IoResult tlsRead(SSL* ssl, evbuffer* buffer, size_t cap, size_t& bytes_read);

// Writes `buffer` as TLS records of up to 16 KiB: small chains are coalesced
// into one record (and one send) instead of a record each.
IoResult tlsWrite(SSL* ssl, evbuffer* buffer, size_t& bytes_written);

}  // namespace crest::proxy
