#include "health/http_prober.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

using crest::health::parseStatusLine;

TEST_CASE("prober: status lines") {
  CHECK(parseStatusLine("HTTP/1.1 200 OK") == 200);
  CHECK(parseStatusLine("HTTP/1.0 503 Service Unavailable") == 503);
  CHECK(parseStatusLine("HTTP/1.1 204") == 204);
  CHECK(parseStatusLine("HTTP/1.1 20 OK") == 0);
  CHECK(parseStatusLine("HTTP/2 200") == 0);
  CHECK(parseStatusLine("SSH-2.0-OpenSSH") == 0);
  CHECK(parseStatusLine("HTTP/1.1 999 Nope") == 0);
}

namespace {

// A loopback listener the test answers by hand, and a probe target for it.
struct SilentServer {
  int listener = -1;
  crest::conf::HealthCheck check;
  crest::health::ProbeTarget target;

  SilentServer() {
    listener = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listener, 4) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    check.path = "/health";
    check.timeout = std::chrono::seconds(30);
    std::memcpy(&target.address, &addr, sizeof addr);
    target.address_length = sizeof addr;
    target.host_header = "backend";
    target.check = &check;
  }
  ~SilentServer() { ::close(listener); }
};

}  // namespace

TEST_CASE("prober: a prober destroyed with probes in flight frees them without calling back") {
  SilentServer server;
  event_base* base = event_base_new();
  auto owner = std::make_shared<int>(0);  // stands for what a callback keeps alive
  bool called = false;
  {
    crest::health::HttpProber prober(base);
    prober.probe(server.target, [owner, &called](crest::health::ProbeResult) { called = true; });
    event_base_loop(base, EVLOOP_NONBLOCK);  // connects and sends; no answer comes
    CHECK(owner.use_count() == 2);
  }
  CHECK(owner.use_count() == 1);
  CHECK_FALSE(called);
  event_base_free(base);
}

TEST_CASE("prober: a probe waiting for its answer does not wake the loop") {
  SilentServer server;
  event_base* base = event_base_new();
  crest::health::HttpProber prober(base);
  std::optional<crest::health::ProbeResult> result;
  prober.probe(server.target, [&](crest::health::ProbeResult r) { result = std::move(r); });

  int conn = ::accept(server.listener, nullptr, nullptr);
  REQUIRE(conn >= 0);
  // A probe that kept its write interest after sending was active on every
  // pass, and EVLOOP_NONBLOCK only returns once a pass finds nothing to do:
  // this loop never ended.
  std::string request;
  while (request.find("\r\n\r\n") == std::string::npos) {
    event_base_loop(base, EVLOOP_NONBLOCK);
    char buf[512];
    ssize_t n = ::recv(conn, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) request.append(buf, static_cast<size_t>(n));
  }
  CHECK(request.rfind("GET /health HTTP/1.1\r\nHost: backend\r\n", 0) == 0);

  // The request is out and the socket stays writable: the loop must sleep
  // until the only other event, this timer.
  bool timer_fired = false;
  event* timer = evtimer_new(
      base, [](evutil_socket_t, short, void* flag) { *static_cast<bool*>(flag) = true; },
      &timer_fired);
  timeval tv{0, 20'000};
  evtimer_add(timer, &tv);
  event_base_loop(base, EVLOOP_ONCE);
  CHECK(timer_fired);
  CHECK_FALSE(result);

  const std::string answer = "HTTP/1.1 503 Service Unavailable\r\n\r\n";
  REQUIRE(::send(conn, answer.data(), answer.size(), 0) == static_cast<ssize_t>(answer.size()));
  event_base_loop(base, EVLOOP_ONCE);
  REQUIRE(result);
  CHECK_FALSE(result->pass);
  CHECK(result->reason == "status 503");

  event_free(timer);
  ::close(conn);
  event_base_free(base);
}
