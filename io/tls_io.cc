#include "io/tls_io.h"

#include <openssl/err.h>

#include <algorithm>
#include <cerrno>

namespace crest::io {
namespace {

constexpr size_t kRecord = 16 * 1024;

IoResult classify(SSL* ssl, int rc) {
  switch (SSL_get_error(ssl, rc)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
      return IoResult::WouldBlock;
    case SSL_ERROR_ZERO_RETURN:
      return IoResult::Closed;
    case SSL_ERROR_SYSCALL:
      ERR_clear_error();
      // EOF without close_notify is how most clients hang up.
      return errno == 0 ? IoResult::Closed : IoResult::Error;
    default:
      ERR_clear_error();
      return IoResult::Error;
  }
}

// The socket BIO's callback argument is non-null while its last read came
// up short: the socket was drained then, and data arriving since has
// brought a new edge.
const char kDrained = 0;

long noteShortRead(BIO* bio, int oper, const char*, size_t asked, int, long, int ret, size_t* got) {
  if (oper == (BIO_CB_READ | BIO_CB_RETURN)) {
    bool drained = ret > 0 && got != nullptr && *got < asked;
    BIO_set_callback_arg(bio, drained ? const_cast<char*>(&kDrained) : nullptr);
  }
  return ret;
}

}  // namespace

void tlsAttach(SSL* ssl, int fd) {
  SSL_set_fd(ssl, fd);
  SSL_set_read_ahead(ssl, 1);
  BIO_set_callback_ex(SSL_get_rbio(ssl), noteShortRead);
}

IoResult tlsHandshake(SSL* ssl) {
  errno = 0;
  int rc = SSL_do_handshake(ssl);
  if (rc == 1) return IoResult::Progress;
  IoResult r = classify(ssl, rc);
  return r == IoResult::Closed ? IoResult::Error : r;
}

IoResult tlsRead(SSL* ssl, evbuffer* buffer, size_t cap, size_t& bytes_read, bool until_eof,
                 ReadScratch& scratch, bool& reads_large) {
  bytes_read = 0;
  BIO* socket = SSL_get_rbio(ssl);
  // Only a read made from here on can tell that the socket is drained now.
  BIO_set_callback_arg(socket, nullptr);
  while (evbuffer_get_length(buffer) < cap) {
    ReadSpace space = beginRead(buffer, kRecord, scratch, reads_large);
    if (space.data == nullptr) return IoResult::Error;
    errno = 0;
    int n = SSL_read(ssl, space.data, static_cast<int>(space.size));
    if (!endRead(buffer, space, n, reads_large)) return IoResult::Error;
    if (n <= 0) return classify(ssl, n);
    bytes_read += static_cast<size_t>(n);
    if (!until_eof && BIO_get_callback_arg(socket) != nullptr && !SSL_has_pending(ssl))
      return IoResult::WouldBlock;
  }
  return IoResult::Progress;
}

IoResult tlsWrite(SSL* ssl, evbuffer* buffer, size_t& bytes_written) {
  bytes_written = 0;
  while (evbuffer_get_length(buffer) > 0) {
    size_t n = std::min(evbuffer_get_length(buffer), kRecord);
    // Makes up to one record contiguous: a copy only when it spans several chains.
    unsigned char* data = evbuffer_pullup(buffer, static_cast<ev_ssize_t>(n));
    errno = 0;
    int sent = SSL_write(ssl, data, static_cast<int>(n));
    if (sent <= 0) return classify(ssl, sent);
    evbuffer_drain(buffer, static_cast<size_t>(sent));
    bytes_written += static_cast<size_t>(sent);
  }
  return IoResult::Progress;
}

}  // namespace crest::io
