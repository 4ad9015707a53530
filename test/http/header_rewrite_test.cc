#include "http/header_rewrite.h"

#include <catch2/catch.hpp>

#include "test/support/evbuffer_text.h"

using namespace crest::http;
using crest::test::makeBuffer;
using crest::test::text;

namespace {

MessageHead requestHead(HeaderList headers) {
  MessageHead h;
  h.method = "GET";
  h.target = "/path";
  h.headers = std::move(headers);
  return h;
}

const ForwardInfo kInfo{"192.0.2.7", "http", "generated-id", "10.0.0.1:80"};

}  // namespace

TEST_CASE("rewrite: forwarded headers are added, Host kept") {
  std::string out(writeUpstreamRequestHead(
      requestHead({{"Host", "Example.com:8080"}, {"Accept", "*/*"}}), "/path", kInfo));
  CHECK(out ==
        "GET /path HTTP/1.1\r\n"
        "Host: Example.com:8080\r\n"
        "Accept: */*\r\n"
        "X-Forwarded-For: 192.0.2.7\r\n"
        "X-Forwarded-Proto: http\r\n"
        "X-Forwarded-Host: Example.com:8080\r\n"
        "X-Request-Id: generated-id\r\n"
        "\r\n");
}

TEST_CASE(
    "rewrite: X-Forwarded-For is appended, X-Request-Id kept, client X-Forwarded-Proto replaced") {
  std::string s(writeUpstreamRequestHead(requestHead({{"Host", "h"},
                                                      {"X-Forwarded-For", "1.1.1.1"},
                                                      {"x-forwarded-for", "2.2.2.2"},
                                                      {"X-Forwarded-Proto", "https"},
                                                      {"X-Request-Id", "abc"}}),
                                         "/path", kInfo));
  CHECK(s.find("X-Forwarded-For: 1.1.1.1, 2.2.2.2, 192.0.2.7\r\n") != std::string::npos);
  CHECK(s.find("X-Forwarded-Proto: http\r\n") != std::string::npos);
  CHECK(s.find("https") == std::string::npos);
  CHECK(s.find("X-Request-Id: abc\r\n") != std::string::npos);
  CHECK(s.find("generated-id") == std::string::npos);
}

TEST_CASE("rewrite: hop-by-hop headers and what Connection names are dropped") {
  auto head = requestHead({{"Host", "h"},
                           {"Connection", "keep-alive, X-Secret"},
                           {"Keep-Alive", "timeout=5"},
                           {"Proxy-Connection", "keep-alive"},
                           {"TE", "trailers"},
                           {"Trailer", "X-T"},
                           {"Upgrade", "websocket"},
                           {"X-Secret", "s"},
                           {"Expect", "100-continue"},
                           {"X-Kept", "k"}});
  std::string s(writeUpstreamRequestHead(head, "/path", kInfo));
  for (const char* gone :
       {"Connection", "Keep-Alive", "TE:", "Trailer", "Upgrade", "X-Secret", "Expect"}) {
    INFO(gone);
    CHECK(s.find(gone) == std::string::npos);
  }
  CHECK(s.find("X-Kept: k\r\n") != std::string::npos);
}

TEST_CASE("rewrite: request framing is re-stated from the parsed body") {
  auto chunked = requestHead({{"Host", "h"}, {"Transfer-Encoding", "chunked"}});
  chunked.framing = Framing::Chunked;
  std::string out(writeUpstreamRequestHead(chunked, "/", kInfo));
  CHECK(out.find("Transfer-Encoding: chunked\r\n\r\n") != std::string::npos);

  auto sized = requestHead({{"Host", "h"}, {"Content-Length", "0012"}});
  sized.framing = Framing::ContentLength;
  sized.content_length = 12;
  std::string out2(writeUpstreamRequestHead(sized, "/", kInfo));
  CHECK(out2.find("Content-Length: 12\r\n") != std::string::npos);
  CHECK(out2.find("0012") == std::string::npos);
}

TEST_CASE("rewrite: HTTP/1.0 requests without Host get the server's address") {
  auto head = requestHead({});
  head.version_minor = 0;
  std::string out(writeUpstreamRequestHead(head, "/", kInfo));
  CHECK(out.find("Host: 10.0.0.1:80\r\n") != std::string::npos);
}

TEST_CASE("rewrite: response heads re-frame and state the connection's fate") {
  MessageHead resp;
  resp.status = 200;
  resp.reason = "OK";
  resp.headers = {{"Content-Type", "text/plain"},
                  {"Connection", "close, X-Hop"},
                  {"X-Hop", "1"},
                  {"Transfer-Encoding", "chunked"}};
  resp.framing = Framing::Chunked;
  std::string out(writeDownstreamResponseHead(resp, 1, true, false));
  CHECK(out == "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n");

  std::string out10(writeDownstreamResponseHead(resp, 0, false, true));
  CHECK(out10 == "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n");

  MessageHead head_resp;
  head_resp.status = 200;
  head_resp.reason = "OK";
  head_resp.headers = {{"Content-Length", "1000"}};
  head_resp.framing = Framing::None;
  std::string out_head(writeDownstreamResponseHead(head_resp, 0, false, false));
  CHECK(out_head == "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nConnection: keep-alive\r\n\r\n");
}

TEST_CASE("rewrite: proxy responses carry their own type and length") {
  auto out = makeBuffer();
  writeProxyResponse(503, "text/plain; charset=utf-8", "no healthy server in pool \"api\"\n", true,
                     out.get(), "Retry-After: 1\r\n");
  CHECK(text(out.get()) ==
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 32\r\n"
        "Connection: close\r\n"
        "Retry-After: 1\r\n"
        "\r\n"
        "no healthy server in pool \"api\"\n");
  auto fallback = makeBuffer();
  writeProxyResponse(503, "application/json", "{\"error\":\"busy\"}", false, fallback.get());
  CHECK(text(fallback.get()) ==
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json\r\n"
        "Content-Length: 16\r\n"
        "\r\n"
        "{\"error\":\"busy\"}");
}

TEST_CASE("rewrite: fields the parser marked as named with _ are not forwarded") {
  HeaderField te("Transfer_Encoding", "chunked");
  HeaderField xff("X_Forwarded_For", "1.2.3.4");
  te.id = xff.id = HeaderName::Underscored;
  std::string out(writeUpstreamRequestHead(requestHead({{"Host", "a"}, te, xff, {"X-Ok", "1"}}),
                                           "/path", kInfo));
  CHECK(out.find("_") == std::string::npos);
  CHECK(out.find("X-Ok: 1\r\n") != std::string::npos);
  CHECK(out.find("X-Forwarded-For: 192.0.2.7\r\n") != std::string::npos);
}

TEST_CASE("rewrite: an empty POST, PUT or PATCH states Content-Length: 0, a GET nothing") {
  for (const char* method : {"POST", "PUT", "PATCH"}) {
    MessageHead h = requestHead({{"Host", "a"}});
    h.method = method;
    std::string out(writeUpstreamRequestHead(h, "/path", kInfo));
    INFO(method);
    CHECK(out.find("\r\nContent-Length: 0\r\n") != std::string::npos);
  }
  std::string get(writeUpstreamRequestHead(requestHead({{"Host", "a"}}), "/path", kInfo));
  CHECK(get.find("Content-Length") == std::string::npos);
}

TEST_CASE("rewrite: a WebSocket handshake keeps its upgrade both ways, and only that one") {
  auto head = requestHead({{"Host", "h"},
                           {"Connection", "Upgrade, X-Secret"},
                           {"Upgrade", "websocket, foo"},
                           {"X-Secret", "s"},
                           {"Sec-WebSocket-Key", "k"}});
  head.upgrade_websocket = true;
  std::string s(writeUpstreamRequestHead(head, "/ws", kInfo));
  CHECK(s.find("Connection: upgrade\r\nUpgrade: websocket\r\n") != std::string::npos);
  CHECK(s.find("foo") == std::string::npos);
  CHECK(s.find("X-Secret") == std::string::npos);
  CHECK(s.find("Sec-WebSocket-Key: k\r\n") != std::string::npos);

  MessageHead switched;
  switched.status = 101;
  switched.reason = "Switching Protocols";
  switched.headers = {
      {"Upgrade", "websocket"}, {"Connection", "Upgrade"}, {"Sec-WebSocket-Accept", "a"}};
  std::string out(writeDownstreamResponseHead(switched, 1, false, true));
  CHECK(out ==
        "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: a\r\n"
        "Connection: upgrade\r\nUpgrade: websocket\r\n\r\n");
}
