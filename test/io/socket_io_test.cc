#include "io/socket_io.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <initializer_list>
#include <string>
#include <string_view>

#include "io/tls_io.h"
#include "test/support/evbuffer_text.h"
#include "test/support/self_signed.h"

using namespace crest::io;
namespace test = crest::test;

namespace {

// Two connected non-blocking stream sockets.
struct SocketPair {
  int ours = -1;
  int theirs = -1;
  SocketPair() {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) == 0);
    ours = fds[0];
    theirs = fds[1];
  }
  ~SocketPair() {
    ::close(ours);
    ::close(theirs);
  }
  void send(std::string_view bytes) const {
    REQUIRE(::write(theirs, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
  }
};

// A TLS server on `ours` (attached as the proxy attaches a client) and a TLS
// client on `theirs`, handshaken, with a throwaway P-256 certificate.
struct TlsPair : SocketPair {
  SSL_CTX* server_ctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX* client_ctx = SSL_CTX_new(TLS_client_method());
  SSL* server = nullptr;
  SSL* client = nullptr;

  TlsPair() {
    test::SelfSigned self_signed("crest.test", 0, 1);
    // As tls::TlsContext: a FIN without close_notify is a close (test_tls.py).
    SSL_CTX_set_options(server_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    REQUIRE(SSL_CTX_use_certificate(server_ctx, self_signed.cert) == 1);
    REQUIRE(SSL_CTX_use_PrivateKey(server_ctx, self_signed.key) == 1);
    server = SSL_new(server_ctx);
    tlsAttach(server, ours);
    SSL_set_accept_state(server);
    client = SSL_new(client_ctx);
    SSL_set_fd(client, theirs);
    SSL_set_connect_state(client);
    bool server_done = false;
    bool client_done = false;
    for (int turn = 0; turn < 20 && !(server_done && client_done); ++turn) {
      client_done = client_done || SSL_do_handshake(client) == 1;
      server_done = server_done || tlsHandshake(server) == IoResult::Progress;
    }
    REQUIRE(server_done);
    REQUIRE(client_done);
  }
  ~TlsPair() {
    SSL_free(server);
    SSL_free(client);
    SSL_CTX_free(server_ctx);
    SSL_CTX_free(client_ctx);
  }
  // One TLS record from the client per text.
  void records(std::initializer_list<std::string_view> texts) const {
    for (std::string_view text : texts)
      REQUIRE(SSL_write(client, text.data(), static_cast<int>(text.size())) ==
              static_cast<int>(text.size()));
  }
};

// A connection's read side: its buffer, the worker's scratch memory and the
// connection's record of its last read, as readInto and tlsRead take them.
struct Reader {
  test::Evbuffer in = test::makeBuffer();
  ReadScratch scratch;
  bool large = false;
  size_t got = 0;
  IoResult plain(int fd, size_t cap = 1 << 20, bool until_eof = false) {
    return readInto(fd, in.get(), cap, got, until_eof, scratch, large);
  }
  IoResult tls(SSL* ssl, size_t cap = 1 << 20, bool until_eof = false) {
    return tlsRead(ssl, in.get(), cap, got, until_eof, scratch, large);
  }
  std::string take() { return test::takeText(in.get()); }
};

}  // namespace

TEST_CASE("accepted sockets have TCP_NODELAY from the listening socket") {
  SocketAddress addr;
  std::string error;
  crest::conf::HostPort any_port;
  any_port.host = "127.0.0.1";
  REQUIRE(resolveAddress(any_port, addr, error));
  int listener = listenSocket(addr, false, error);
  REQUIRE(listener >= 0);
  SocketAddress bound;
  bound.length = sizeof bound.storage;
  REQUIRE(::getsockname(listener, reinterpret_cast<sockaddr*>(&bound.storage), &bound.length) == 0);
  int client = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(::connect(client, bound.get(), bound.length) == 0);
  int accepted = ::accept(listener, nullptr, nullptr);  // loopback: queued once connect returns
  REQUIRE(accepted >= 0);
  int nodelay = 0;
  socklen_t len = sizeof nodelay;
  REQUIRE(::getsockopt(accepted, IPPROTO_TCP, TCP_NODELAY, &nodelay, &len) == 0);
  CHECK(nodelay == 1);
  ::close(accepted);
  ::close(client);
  ::close(listener);
}

TEST_CASE("readInto stops at a short read and reads to the end only when told") {
  SocketPair s;
  Reader r;
  s.send("hello");
  ::shutdown(s.theirs, SHUT_WR);
  // The short read counts as drained: no second read, so the FIN is not seen.
  CHECK(r.plain(s.ours) == IoResult::WouldBlock);
  CHECK(r.got == 5);
  CHECK(r.take() == "hello");
  CHECK(r.plain(s.ours, 1 << 20, true) == IoResult::Closed);
  CHECK(r.got == 0);
}

TEST_CASE("readInto copies small reads from the scratch memory and reads large ones in place") {
  SocketPair s;
  Reader r;
  auto readOnce = [&](std::string_view sent) {
    s.send(sent);
    REQUIRE(r.plain(s.ours) == IoResult::WouldBlock);
    REQUIRE(r.got == sent.size());
    CHECK(r.take() == sent);
  };

  readOnce("GET / HTTP/1.1\r\n\r\n");
  CHECK(!r.large);
  // Went through the scratch memory: its bytes are still there.
  CHECK(std::string_view(r.scratch.bytes.get(), 5) == "GET /");

  std::string body(8 * 1024, 'b');
  readOnce(body);  // read through the scratch memory, as the last read was small
  CHECK(r.large);
  CHECK(r.scratch.bytes[0] == 'b');

  std::string next(8 * 1024, 'n');
  readOnce(next);  // in place: the scratch memory is left as it was
  CHECK(r.large);
  CHECK(r.scratch.bytes[0] == 'b');

  readOnce("small again");  // in place, after which small reads go through the scratch again
  CHECK(!r.large);
  CHECK(r.scratch.bytes[0] == 'b');
  readOnce("x");
  CHECK(r.scratch.bytes[0] == 'x');
}

TEST_CASE("writeFrom sends the head before the buffer, and keeps what the socket would not take") {
  SocketPair s;
  int small = 4096;
  REQUIRE(::setsockopt(s.ours, SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
  std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n";
  const std::string sent_head = head;
  std::string body(200000, 'b');
  auto out = test::makeBuffer();
  evbuffer_add(out.get(), body.data(), body.size());
  size_t written = 0;
  std::string received;
  auto receive = [&] {
    char chunk[65536];
    ssize_t n;
    while ((n = ::read(s.theirs, chunk, sizeof chunk)) > 0) received.append(chunk, size_t(n));
  };
  REQUIRE(writeFrom(s.ours, head, out.get(), written) == IoResult::WouldBlock);
  CHECK(written > 0);
  CHECK(written < sent_head.size() + body.size());
  CHECK(head.empty());
  CHECK(evbuffer_get_length(out.get()) == sent_head.size() + body.size() - written);
  for (int turn = 0; turn < 1000 && evbuffer_get_length(out.get()) > 0; ++turn) {
    receive();
    REQUIRE(writeFrom(s.ours, head, out.get(), written) != IoResult::Error);
  }
  receive();
  CHECK(received == sent_head + body);

  // A head the socket takes only part of keeps its unsent rest, ahead of the buffer.
  received.clear();
  std::string big_head(300000, 'h');
  evbuffer_add(out.get(), "tail", 4);
  REQUIRE(writeFrom(s.ours, big_head, out.get(), written) == IoResult::WouldBlock);
  CHECK(big_head.size() == 300000 - written);
  CHECK(evbuffer_get_length(out.get()) == 4);
  for (int turn = 0; turn < 1000 && (!big_head.empty() || evbuffer_get_length(out.get()) > 0);
       ++turn) {
    receive();
    REQUIRE(writeFrom(s.ours, big_head, out.get(), written) != IoResult::Error);
  }
  receive();
  CHECK(received == std::string(300000, 'h') + "tail");
}

TEST_CASE("readInto leaves one small read in the scratch memory when asked, and only then") {
  SocketPair s;
  Reader r;
  std::string_view kept;
  s.send("GET / HTTP/1.1\r\n\r\n");
  REQUIRE(readInto(s.ours, r.in.get(), 1 << 20, r.got, false, r.scratch, r.large, &kept) ==
          IoResult::WouldBlock);
  CHECK(kept == "GET / HTTP/1.1\r\n\r\n");
  CHECK(kept.data() == r.scratch.bytes.get());
  CHECK(evbuffer_get_length(r.in.get()) == 0);

  // Behind bytes already buffered, a read joins them.
  evbuffer_add(r.in.get(), "x", 1);
  kept = {};
  s.send("yz");
  REQUIRE(readInto(s.ours, r.in.get(), 1 << 20, r.got, false, r.scratch, r.large, &kept) ==
          IoResult::WouldBlock);
  CHECK(kept.empty());
  CHECK(r.take() == "xyz");

  // A read that fills the scratch memory is not the socket's last: it goes to the buffer.
  std::string big(ReadScratch::kSize + 100, 'b');
  s.send(big);
  kept = {};
  REQUIRE(readInto(s.ours, r.in.get(), 1 << 20, r.got, false, r.scratch, r.large, &kept) ==
          IoResult::WouldBlock);
  CHECK(kept.empty());
  CHECK(r.take() == big);
}

TEST_CASE("tlsRead takes every record that has arrived in one read and stops there") {
  TlsPair t;
  Reader r;
  t.records({"one", "two", "three"});
  ::shutdown(t.theirs, SHUT_WR);  // no close_notify: how most clients hang up
  CHECK(r.tls(t.server) == IoResult::WouldBlock);
  CHECK(r.take() == "onetwothree");
  // Told that the client is closing, it reads on to the end.
  CHECK(r.tls(t.server, 1 << 20, true) == IoResult::Closed);
  CHECK(r.got == 0);
}

TEST_CASE("tlsRead does not take records buffered earlier for a drained socket") {
  TlsPair t;
  Reader r;
  t.records({"one", "two", "three"});
  // Stops at its cap after one record; the other two wait inside OpenSSL,
  // read ahead by a read that came up short.
  CHECK(r.tls(t.server, 3) == IoResult::Progress);
  CHECK(r.take() == "one");
  // New data's edge brings the connection back: what OpenSSL holds is not
  // all there is, so the socket must be read again.
  t.records({"four"});
  CHECK(r.tls(t.server) == IoResult::WouldBlock);
  CHECK(r.take() == "twothreefour");
}

TEST_CASE("tlsRead places its reads as readInto does") {
  TlsPair t;
  Reader r;
  std::string body(8 * 1024, 'b');
  t.records({body});
  CHECK(r.tls(t.server) == IoResult::WouldBlock);
  CHECK(r.take() == body);
  CHECK(r.large);
  CHECK(r.scratch.bytes[0] == 'b');
  t.records({"small"});
  CHECK(r.tls(t.server) == IoResult::WouldBlock);
  CHECK(r.take() == "small");
  CHECK(!r.large);
  CHECK(r.scratch.bytes[0] == 'b');  // read in place
}

TEST_CASE("tlsWrite holds what a full socket does not take and sends it first, in order") {
  TlsPair t;
  int small = 16 * 1024;
  REQUIRE(::setsockopt(t.ours, SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
  std::string sent(1 << 20, '\0');
  for (size_t i = 0; i < sent.size(); ++i) sent[i] = static_cast<char>(i % 251);
  test::Evbuffer out = test::makeBuffer();
  evbuffer_add(out.get(), sent.data(), sent.size());
  TlsScratch scratch;
  std::string received;
  char chunk[16 * 1024];
  bool held_seen = false;
  bool closed = false;
  bool shutdown_sent = false;
  for (int turn = 0; turn < 10000 && !closed; ++turn) {
    size_t written = 0;
    IoResult r = tlsWrite(t.server, out.get(), written, scratch);
    REQUIRE(r != IoResult::Error);
    held_seen = held_seen || tlsHeldBytes(t.server) > 0;
    // close_notify is written outside tlsWrite: it must wait behind what is held.
    if (held_seen && !shutdown_sent && evbuffer_get_length(out.get()) == 0 &&
        tlsHeldBytes(t.server) > 0) {
      CHECK(SSL_shutdown(t.server) <= 0);
    }
    if (evbuffer_get_length(out.get()) == 0 && tlsHeldBytes(t.server) == 0 && !shutdown_sent)
      shutdown_sent = SSL_shutdown(t.server) >= 0;
    int n;
    while ((n = SSL_read(t.client, chunk, sizeof chunk)) > 0) received.append(chunk, n);
    closed = SSL_get_error(t.client, n) == SSL_ERROR_ZERO_RETURN;
  }
  CHECK(held_seen);
  CHECK(closed);
  CHECK(received.size() == sent.size());
  CHECK(received == sent);
}

TEST_CASE("addressText writes addresses as inet_ntop does") {
  auto text = [](int family, const char* address) {
    sockaddr_storage storage{};
    storage.ss_family = static_cast<sa_family_t>(family);
    void* bytes = family == AF_INET
                      ? static_cast<void*>(&reinterpret_cast<sockaddr_in&>(storage).sin_addr)
                      : static_cast<void*>(&reinterpret_cast<sockaddr_in6&>(storage).sin6_addr);
    REQUIRE(::inet_pton(family, address, bytes) == 1);
    return addressText(storage);
  };
  for (const char* v4 : {"0.0.0.0", "127.0.0.1", "255.255.255.255", "10.0.100.9", "192.168.1.99"}) {
    CHECK(text(AF_INET, v4) == v4);
  }
  for (const char* v6 : {"::1", "2001:db8::8:800:200c:417a", "::ffff:10.0.0.1"}) {
    CHECK(text(AF_INET6, v6) == v6);
  }
}
