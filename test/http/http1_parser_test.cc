#include "http/http1_parser.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "test/support/evbuffer_text.h"

using namespace crest::http;
using crest::test::makeBuffer;
using crest::test::text;
using Event = Http1Parser::Event;

namespace {

struct Parsed {
  Event head_event;
  MessageHead head;
  std::string body;
  Event end_event;
  int error_status = 0;
  std::string error;
};

// Parses one message from `wire`, feeding it `step` bytes at a time.
Parsed parseOne(Http1Parser::Kind kind, const std::string& wire, size_t step = 1 << 20,
                ParserLimits limits = {}) {
  Http1Parser parser(kind, limits);
  auto in = makeBuffer();
  auto body = makeBuffer();
  BodyEncoder encoder(body.get(), false);
  Parsed p{Event::NeedMore, {}, {}, Event::NeedMore, 0, {}};
  size_t fed = 0;
  Event ev = Event::NeedMore;
  bool have_head = false;
  while (true) {
    ev = parser.parse(in.get(), encoder, 1 << 20);
    if (ev == Event::Head && !have_head) {
      have_head = true;
      p.head_event = ev;
      p.head = parser.head();
      continue;
    }
    if (ev == Event::Complete || ev == Event::Error) break;
    if (fed >= wire.size()) {
      ev = parser.finishAtEof(encoder);
      break;
    }
    size_t n = std::min(step, wire.size() - fed);
    evbuffer_add(in.get(), wire.data() + fed, n);
    fed += n;
  }
  if (!have_head) p.head_event = ev;
  p.end_event = ev;
  p.body = text(body.get());
  p.error_status = parser.errorStatus();
  p.error = parser.errorReason();
  return p;
}

Parsed request(const std::string& wire, size_t step = 1 << 20) {
  return parseOne(Http1Parser::Kind::Request, wire, step);
}

}  // namespace

TEST_CASE("parser: a GET with headers") {
  auto p = request("GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nX-Thing:  padded value \t\r\n\r\n");
  REQUIRE(p.end_event == Event::Complete);
  CHECK(p.head.method == "GET");
  CHECK(p.head.target == "/a?b=c");
  CHECK(p.head.version_minor == 1);
  CHECK(p.head.keep_alive);
  CHECK(*p.head.find("x-thing") == "padded value");
  CHECK(p.head.framing == Framing::None);
}

TEST_CASE("parser: heads and bodies split at every byte") {
  std::string wire =
      "POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n";
  auto p = request(wire, 1);
  REQUIRE(p.end_event == Event::Complete);
  CHECK(p.head.framing == Framing::Chunked);
  CHECK(p.body == "hello world");
}

TEST_CASE("parser: Content-Length bodies") {
  auto p = request("PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world", 3);
  REQUIRE(p.end_event == Event::Complete);
  CHECK(p.head.framing == Framing::ContentLength);
  CHECK(p.head.content_length == 11);
  CHECK(p.body == "hello world");
}

TEST_CASE("parser: HTTP/1.0 defaults to close, keep-alive when asked") {
  auto p = request("GET / HTTP/1.0\r\n\r\n");
  REQUIRE(p.end_event == Event::Complete);
  CHECK(p.head.version_minor == 0);
  CHECK_FALSE(p.head.keep_alive);
  auto k = request("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  CHECK(k.head.keep_alive);
}

TEST_CASE("parser: pipelined requests come out one at a time, in order") {
  Http1Parser parser(Http1Parser::Kind::Request, {});
  auto in = makeBuffer(
      "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
      "POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
      "GET /3 HTTP/1.1\r\nHost: h\r\n\r\n");
  auto body = makeBuffer();
  BodyEncoder enc(body.get(), false);
  for (const char* target : {"/1", "/2", "/3"}) {
    REQUIRE(parser.parse(in.get(), enc, 1 << 20) == Event::Head);
    CHECK(parser.head().target == target);
    REQUIRE(parser.parse(in.get(), enc, 1 << 20) == Event::Complete);
    parser.nextMessage();
  }
  CHECK(text(body.get()) == "abc");
  CHECK(parser.parse(in.get(), enc, 1 << 20) == Event::NeedMore);
}

TEST_CASE("parser: the body budget bounds what one call consumes") {
  Http1Parser parser(Http1Parser::Kind::Request, {});
  auto in = makeBuffer("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789");
  auto body = makeBuffer();
  BodyEncoder enc(body.get(), false);
  REQUIRE(parser.parse(in.get(), enc, 4) == Event::Head);
  CHECK(parser.parse(in.get(), enc, 4) == Event::NeedMore);
  CHECK(text(body.get()) == "0123");
  CHECK(parser.parse(in.get(), enc, 100) == Event::Complete);
  CHECK(text(body.get()) == "0123456789");
}

TEST_CASE("parser: chunked re-framing writes one chunk per piece") {
  Http1Parser parser(Http1Parser::Kind::Request, {});
  auto in = makeBuffer("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello");
  auto out = makeBuffer();
  BodyEncoder enc(out.get(), true);
  REQUIRE(parser.parse(in.get(), enc, 1 << 20) == Event::Head);
  REQUIRE(parser.parse(in.get(), enc, 1 << 20) == Event::Complete);
  CHECK(text(out.get()) == "5\r\nhello\r\n0\r\n\r\n");
}

TEST_CASE("parser: ambiguous or malformed requests are refused with 400") {
  const char* cases[][2] = {
      {"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
       "CL and TE"},
      {"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
       "differing CL"},
      {"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 4\r\n\r\n", "comma-listed CL"},
      {"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", "negative CL"},
      {"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", "unknown coding"},
      {"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "stacked coding"},
      {"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
       "chunked not last"},
      {"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n", "xchunked"},
      {"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
       "chunked\r\n\r\n",
       "two TE"},
      {"GET / HTTP/1.1\r\nHost: h\r\nX-A: one\r\n two\r\n\r\n", "obs-fold"},
      {"GET / HTTP/1.1\r\nHost: h\r\nX-A : one\r\n\r\n", "space before colon"},
      // Would otherwise continue the previous value: Host "h" + "evil".
      {"GET / HTTP/1.1\r\nHost: h\r\n: evil\r\n\r\n", "empty name"},
      {"GET / HTTP/1.1\r\nHost: h\r\n:\r\n\r\n", "empty name and value"},
      {"GET / HTTP/1.1\r\nHost: h\r\nX-\x01: one\r\n\r\n", "CTL in name"},
      {"GET / HTTP/1.1\r\nHost: h\r\nX-A: o\x7fne\r\n\r\n", "DEL in value"},
      // Past the first eight bytes of a long value, at every position of a word.
      {"GET / HTTP/1.1\r\nHost: h\r\nX-A: abcdefghijklm\x7fopq\r\n\r\n", "DEL in a long value"},
      {"GET / HTTP/1.1\r\nHost: h\r\nX-A: abcdefgh\x01ijklmnop\r\n\r\n", "SOH in a long value"},
      {"GET / HTTP/1.1\r\nHost: h\r\nX-A: abcdefghijklmno\x1f\r\n\r\n", "US ending a long value"},
      {"GET / HTTP/1.1\r\nHost: h\r\nX-A: o\rne\r\n\r\n", "bare CR"},
      {"GET / HTTP/1.1\r\n\r\n", "no Host"},
      {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "two Host"},
      {"GET  / HTTP/1.1\r\nHost: h\r\n\r\n", "double space"},
      {"G(T / HTTP/1.1\r\nHost: h\r\n\r\n", "bad method"},
      {"GET / HTTP/1.2\r\nHost: h\r\n\r\n", "bad version"},
      {"GET / HTTP/2.0\r\nHost: h\r\n\r\n", "HTTP/2 line"},
      {"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n", "CONNECT"},
      {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
       "non-hex chunk size"},
      {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n",
       "signed chunk size"},
      {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n",
       "overflowing chunk size"},
      {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
       "no CRLF after data"},
      {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "TE in HTTP/1.0"},
  };
  for (const auto& c : cases) {
    INFO(c[1]);
    auto p = request(c[0]);
    CHECK(p.end_event == Event::Error);
    CHECK(p.error_status == 400);
  }
}

TEST_CASE("parser: tabs and high bytes are fine in long values") {
  auto p =
      request("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\tb\tc\td\te\tf\tg\th \xc3\xa9t\xc3\xa9\r\n\r\n");
  CHECK(p.end_event == Event::Complete);
  CHECK(*p.head.find("x-a") == "a\tb\tc\td\te\tf\tg\th \xc3\xa9t\xc3\xa9");
}

TEST_CASE("parser: every control character in a value is refused, wherever it stands") {
  // The parser leaves this check to llhttp's strict mode: this is what says it holds.
  for (int c = 0; c < 0x80; ++c) {
    if (c >= 0x20 && c != 0x7f) continue;
    for (std::string value : {"@x", "x@", "x@y", "abcdefgh@ijklmnop"}) {
      value[value.find('@')] = static_cast<char>(c);
      INFO("byte " << c << " in \"" << value << "\"");
      auto req = request("GET / HTTP/1.1\r\nHost: h\r\nX-A: " + value + "\r\n\r\n");
      auto resp = parseOne(Http1Parser::Kind::Response,
                           "HTTP/1.1 200 OK\r\nX-A: " + value + "\r\nContent-Length: 0\r\n\r\n");
      if (c == '\t') {
        CHECK(req.end_event == Event::Complete);
        CHECK(resp.end_event == Event::Complete);
      } else {
        CHECK(req.error_status == 400);
        CHECK(resp.error_status == 502);
      }
    }
  }
}

TEST_CASE("parser: limits give 431 and 414") {
  ParserLimits limits{256, 5};
  auto many = parseOne(Http1Parser::Kind::Request,
                       "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n",
                       7, limits);
  CHECK(many.error_status == 431);
  auto big = parseOne(Http1Parser::Kind::Request,
                      "GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(300, 'a') + "\r\n\r\n",
                      1 << 20, limits);
  CHECK(big.error_status == 431);
  auto uri =
      parseOne(Http1Parser::Kind::Request,
               "GET /" + std::string(300, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n", 1 << 20, limits);
  CHECK(uri.error_status == 414);
}

TEST_CASE("parser: responses and their framing") {
  auto cl = parseOne(Http1Parser::Kind::Response, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi");
  REQUIRE(cl.end_event == Event::Complete);
  CHECK(cl.head.status == 200);
  CHECK(cl.head.reason == "OK");
  CHECK(cl.body == "hi");

  auto eof = parseOne(Http1Parser::Kind::Response, "HTTP/1.1 200 OK\r\n\r\nuntil close");
  REQUIRE(eof.end_event == Event::Complete);
  CHECK(eof.head.framing == Framing::UntilClose);
  CHECK_FALSE(eof.head.keep_alive);
  CHECK(eof.body == "until close");

  auto nocontent = parseOne(Http1Parser::Kind::Response, "HTTP/1.1 204 No Content\r\n\r\n");
  CHECK(nocontent.end_event == Event::Complete);
  CHECK(nocontent.head.framing == Framing::None);

  auto cut =
      parseOne(Http1Parser::Kind::Response, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort");
  CHECK(cut.end_event == Event::Error);
  CHECK(cut.error_status == 502);
}

TEST_CASE("parser: a response to HEAD has no body whatever its Content-Length says") {
  Http1Parser parser(Http1Parser::Kind::Response, {});
  parser.setNoBody(true);
  auto in = makeBuffer("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
  auto body = makeBuffer();
  BodyEncoder enc(body.get(), false);
  REQUIRE(parser.parse(in.get(), enc, 1 << 20) == Event::Head);
  CHECK(parser.head().framing == Framing::None);
  CHECK(parser.parse(in.get(), enc, 1 << 20) == Event::Complete);
}

TEST_CASE("parser: malformed responses are 502") {
  for (const char* bad : {"HTTP/1.1 abc OK\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "SMTP ready\r\n",
                          "HTTP/1.1 200 OK\r\nX-A: a\r\n: b\r\nContent-Length: 0\r\n\r\n"}) {
    INFO(bad);
    auto p = parseOne(Http1Parser::Kind::Response, bad);
    CHECK(p.end_event == Event::Error);
    CHECK(p.error_status == 502);
  }
}

TEST_CASE("parser: a head parsed where it was read leaves what follows it") {
  Http1Parser parser(Http1Parser::Kind::Request, ParserLimits{});
  std::string_view first = "POST /up HTTP/1.1\r\nHost: a\r\nContent-Le";
  CHECK(parser.parseHead(first) == Event::NeedMore);
  CHECK(first.empty());  // all taken: the parser keeps the partial head itself
  std::string_view rest = "ngth: 4\r\n\r\nbodyGET / HTTP/1.1\r\n";
  CHECK(parser.parseHead(rest) == Event::Head);
  CHECK(rest == "bodyGET / HTTP/1.1\r\n");
  CHECK(parser.head().target == "/up");
  CHECK(parser.head().content_length == 4);
  // Past the head, body bytes are the buffer's business: nothing is taken.
  std::string_view body = rest;
  CHECK(parser.parseHead(body) == Event::NeedMore);
  CHECK(body == rest);
  // The body then comes from a buffer as before.
  auto in = makeBuffer();
  auto out = makeBuffer();
  BodyEncoder encoder(out.get(), false);
  evbuffer_add(in.get(), body.data(), body.size());
  CHECK(parser.parse(in.get(), encoder, 1 << 20) == Event::Complete);
  CHECK(text(out.get()) == "body");
  CHECK(text(in.get()) == "GET / HTTP/1.1\r\n");
}

TEST_CASE("parser: a head parsed where it was read is checked as any other") {
  Http1Parser folded(Http1Parser::Kind::Request, ParserLimits{});
  std::string_view bytes = "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n";
  CHECK(folded.parseHead(bytes) == Event::Error);
  CHECK(folded.errorStatus() == 400);
  CHECK(folded.errorReason() == "obsolete line folding");

  Http1Parser small(Http1Parser::Kind::Request, ParserLimits{32, 100});
  std::string_view big = "GET / HTTP/1.1\r\nHost: a\r\nX-Long: 0123456789abcdef\r\n\r\n";
  CHECK(small.parseHead(big) == Event::Error);
  CHECK(small.errorStatus() == 431);
}

TEST_CASE("parser: request fields named with _ are marked and counted, response fields not") {
  auto p = request(
      "GET / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\nX-Ok: 1\r\nX_Y:\r\n\r\n", 3);
  REQUIRE(p.end_event == Event::Complete);
  CHECK(p.head.framing == Framing::None);
  CHECK(p.head.underscored_fields == 2);
  std::vector<HeaderName> ids;
  for (const auto& f : p.head.headers) ids.push_back(f.id);
  CHECK(ids == std::vector<HeaderName>{HeaderName::Host, HeaderName::Underscored, HeaderName::Other,
                                       HeaderName::Underscored});
  auto r = parseOne(Http1Parser::Kind::Response,
                    "HTTP/1.1 200 OK\r\nX_Server: a\r\nContent-Length: 0\r\n\r\n");
  REQUIRE(r.end_event == Event::Complete);
  CHECK(r.head.underscored_fields == 0);
  CHECK(r.head.headers.begin()->id == HeaderName::Other);
}

TEST_CASE("parser: a bodiless HTTP/1.1 GET asking for websocket is an upgrade, nothing else is") {
  const std::string upgrade = "Connection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\n\r\n";
  CHECK(request("GET /ws HTTP/1.1\r\nHost: h\r\n" + upgrade).head.upgrade_websocket);
  CHECK(request(
            "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: h2c, websocket\r\nConnection: upgrade\r\n\r\n")
            .head.upgrade_websocket);
  // Another protocol, no Connection token, HTTP/1.0, another method, a body: not one.
  CHECK_FALSE(request("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
                  .head.upgrade_websocket);
  CHECK_FALSE(
      request("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n").head.upgrade_websocket);
  CHECK_FALSE(request("GET /ws HTTP/1.0\r\n" + upgrade).head.upgrade_websocket);
  CHECK_FALSE(request("POST /ws HTTP/1.1\r\nHost: h\r\n" + upgrade).head.upgrade_websocket);
  auto with_body = request(
      "GET /ws HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nConnection: Upgrade\r\n"
      "Upgrade: websocket\r\n\r\nhi");
  CHECK_FALSE(with_body.head.upgrade_websocket);
  CHECK(with_body.body == "hi");
}
