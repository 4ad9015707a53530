#include "io/tls_io.h"

#include <openssl/err.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

namespace crest::io {
namespace {

constexpr size_t kRecord = TlsScratch::kRecord;

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

// The write side of a connection's TLS. Outside tlsWrite it writes each
// record to the socket as OpenSSL's socket BIO does. Within tlsWrite the
// records go into the worker's batch memory and out in one send when it
// fills or tlsWrite ends: a 16 KiB response over HTTP/2 was one send of one
// record, and each send on loopback also runs the receiver's side of TCP
// and wakes it. What the socket does not take of a batch is held here and
// sent first, before any other write.
struct BatchedSocket {
  int fd = -1;
  char* batch = nullptr;  // the worker's, while tlsWrite runs
  size_t used = 0;
  std::string held;
};

BatchedSocket& sinkOf(SSL* ssl) {
  return *static_cast<BatchedSocket*>(BIO_get_data(SSL_get_wbio(ssl)));
}

// Sends [data, data + size); how much went, or -1 with errno set (EAGAIN: none could).
ssize_t sendSome(int fd, const char* data, size_t size) {
  size_t sent = 0;
  while (sent < size) {
    ssize_t n = ::send(fd, data + sent, size - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (sent > 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      return -1;
    }
    sent += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(sent);
}

// Sends what is held; true when nothing is held any more. False with errno
// set (EAGAIN: the socket is full).
bool sendHeld(BatchedSocket& sink) {
  if (sink.held.empty()) return true;
  ssize_t n = sendSome(sink.fd, sink.held.data(), sink.held.size());
  if (n < 0) return false;
  sink.held.erase(0, static_cast<size_t>(n));
  if (!sink.held.empty()) errno = EAGAIN;
  return sink.held.empty();
}

// Sends the batch; what the socket does not take is held. False on an error
// other than a full socket.
bool sendBatch(BatchedSocket& sink) {
  size_t used = std::exchange(sink.used, 0);
  if (used == 0) return true;
  ssize_t n = sendSome(sink.fd, sink.batch, used);
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) return false;
    n = 0;
  }
  sink.held.assign(sink.batch + n, used - static_cast<size_t>(n));
  return true;
}

// A write that could not be made: to be retried when the socket is full,
// else an error (errno says which).
int refused(BIO* bio) {
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) BIO_set_retry_write(bio);
  return 0;
}

int batchedWrite(BIO* bio, const char* data, size_t size, size_t* written) {
  auto& sink = *static_cast<BatchedSocket*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  *written = 0;
  if (!sendHeld(sink)) return refused(bio);
  if (sink.batch != nullptr && size <= TlsScratch::kBatch) {
    if (sink.used + size > TlsScratch::kBatch) {
      if (!sendBatch(sink)) return refused(bio);
      if (!sink.held.empty()) {
        BIO_set_retry_write(bio);
        return 0;
      }
    }
    std::memcpy(sink.batch + sink.used, data, size);
    sink.used += size;
    *written = size;
    return 1;
  }
  ssize_t n = ::send(sink.fd, data, size, MSG_NOSIGNAL);
  if (n < 0) return refused(bio);
  *written = static_cast<size_t>(n);
  return 1;
}

long batchedCtrl(BIO*, int command, long, void*) {
  // Batches are sent by tlsWrite; outside it nothing waits to be flushed.
  return command == BIO_CTRL_FLUSH ? 1 : 0;
}

int batchedCreate(BIO* bio) {
  BIO_set_data(bio, new BatchedSocket);
  BIO_set_init(bio, 1);
  return 1;
}

int batchedDestroy(BIO* bio) {
  delete static_cast<BatchedSocket*>(BIO_get_data(bio));
  BIO_set_data(bio, nullptr);
  return 1;
}

const BIO_METHOD* batchedSocketMethod() {
  static const BIO_METHOD* method = [] {
    BIO_METHOD* m =
        BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "crest batched socket");
    BIO_meth_set_write_ex(m, batchedWrite);
    BIO_meth_set_ctrl(m, batchedCtrl);
    BIO_meth_set_create(m, batchedCreate);
    BIO_meth_set_destroy(m, batchedDestroy);
    return m;
  }();
  return method;
}

}  // namespace

void tlsAttach(SSL* ssl, int fd) {
  BIO* reader = BIO_new_socket(fd, BIO_NOCLOSE);
  BIO_set_callback_ex(reader, noteShortRead);
  BIO* writer = BIO_new(batchedSocketMethod());
  static_cast<BatchedSocket*>(BIO_get_data(writer))->fd = fd;
  SSL_set_bio(ssl, reader, writer);
  SSL_set_read_ahead(ssl, 1);
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

IoResult tlsWrite(SSL* ssl, evbuffer* buffer, size_t& bytes_written, TlsScratch& scratch) {
  bytes_written = 0;
  BatchedSocket& sink = sinkOf(ssl);
  if (!sendHeld(sink))
    return errno == EAGAIN || errno == EWOULDBLOCK ? IoResult::WouldBlock : IoResult::Error;
  sink.batch = scratch.batch.get();
  IoResult result = IoResult::Progress;
  while (size_t left = evbuffer_get_length(buffer)) {
    size_t n = std::min(left, kRecord);
    // A record from the first chain where it holds one; else its bytes are
    // gathered in the scratch memory (hot in cache, nothing allocated). A
    // write that must wait is retried with the same bytes, gathered again.
    evbuffer_iovec first;
    evbuffer_peek(buffer, -1, nullptr, &first, 1);
    const void* data = first.iov_base;
    if (first.iov_len < n) {
      evbuffer_copyout(buffer, scratch.record.get(), n);
      data = scratch.record.get();
    }
    errno = 0;
    int sent = SSL_write(ssl, data, static_cast<int>(n));
    if (sent <= 0) {
      result = classify(ssl, sent);
      break;
    }
    evbuffer_drain(buffer, static_cast<size_t>(sent));
    bytes_written += static_cast<size_t>(sent);
  }
  bool sent = sendBatch(sink);
  sink.batch = nullptr;
  if (!sent) return IoResult::Error;
  if (result == IoResult::Progress && !sink.held.empty()) return IoResult::WouldBlock;
  return result;
}

size_t tlsHeldBytes(SSL* ssl) {
  return sinkOf(ssl).held.size();
}

}  // namespace crest::io
