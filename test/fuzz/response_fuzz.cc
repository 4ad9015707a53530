// libFuzzer target: bytes from a server, parsed and re-serialized for a
// client; the first byte chooses the read split and whether the request was HEAD.

#include <cstddef>
#include <cstdint>

#include "proxy/body_encoder.h"
#include "proxy/header_rewrite.h"
#include "proxy/http1_parser.h"

using namespace crest::proxy;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  size_t step = 1 + (data[0] & 0x3f);
  bool head_request = data[0] & 0x40;
  ++data;
  --size;
  Http1Parser parser(Http1Parser::Kind::Response, ParserLimits{4096, 50});
  parser.setNoBody(head_request);
  evbuffer* in = evbuffer_new();
  evbuffer* out = evbuffer_new();
  BodyEncoder encoder(out, true);
  size_t fed = 0;
  for (int messages = 0; messages < 16;) {
    Http1Parser::Event ev = parser.parse(in, encoder, 1 << 16);
    if (ev == Http1Parser::Event::Error) break;
    if (ev == Http1Parser::Event::Head) {
      writeDownstreamResponseHead(parser.head(), 1, true, false, out);
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
    evbuffer_drain(out, evbuffer_get_length(out));
  }
  evbuffer_free(in);
  evbuffer_free(out);
  return 0;
}
