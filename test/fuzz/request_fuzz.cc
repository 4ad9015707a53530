// libFuzzer target: bytes from a client. The first byte chooses where the
// input is split across reads; every head that parses is re-serialized for a
// server, as the proxy does.

#include <cstddef>
#include <cstdint>

#include "proxy/body_encoder.h"
#include "proxy/header_rewrite.h"
#include "proxy/http1_parser.h"

using namespace crest::proxy;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  size_t step = 1 + data[0] % 64;
  ++data;
  --size;
  Http1Parser parser(Http1Parser::Kind::Request, ParserLimits{4096, 50});
  evbuffer* in = evbuffer_new();
  evbuffer* body = evbuffer_new();
  evbuffer* upstream = evbuffer_new();
  BodyEncoder encoder(body, true);
  size_t fed = 0;
  for (int messages = 0; messages < 64;) {
    Http1Parser::Event ev = parser.parse(in, encoder, 1 << 16);
    if (ev == Http1Parser::Event::Error) break;
    if (ev == Http1Parser::Event::Head) {
      ForwardInfo info{"192.0.2.1", "http", "id", "backend:80"};
      writeUpstreamRequestHead(parser.head(), parser.head().target, info, upstream);
      evbuffer_drain(upstream, evbuffer_get_length(upstream));
      continue;
    }
    if (ev == Http1Parser::Event::Complete) {
      parser.nextMessage();
      ++messages;
      continue;
    }
    if (fed >= size) {
      parser.finishAtEof(encoder);
      break;
    }
    size_t n = std::min(step, size - fed);
    evbuffer_add(in, data + fed, n);
    fed += n;
    evbuffer_drain(body, evbuffer_get_length(body));
  }
  evbuffer_free(in);
  evbuffer_free(body);
  evbuffer_free(upstream);
  return 0;
}
