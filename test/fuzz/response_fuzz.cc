// libFuzzer target: bytes from a server, parsed and re-serialized for a
// client; the first byte chooses the read split and whether the request was HEAD.

#include "http/header_rewrite.h"
#include "test/fuzz/feed.h"

using namespace crest::http;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  size_t step = 1 + (data[0] & 0x3f);
  Http1Parser parser(Http1Parser::Kind::Response, ParserLimits{4096, 50});
  parser.setNoBody(data[0] & 0x40);
  evbuffer* out = evbuffer_new();
  crest::fuzz::feedInSteps(parser, data + 1, size - 1, step, 16, out, [&](const MessageHead& head) {
    std::string_view written = writeDownstreamResponseHead(head, 1, true, false);
    evbuffer_add(out, written.data(), written.size());
  });
  evbuffer_free(out);
  return 0;
}
