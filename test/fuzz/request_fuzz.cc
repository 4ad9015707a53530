// libFuzzer target: bytes from a client. The first byte chooses where the
// input is split across reads; every head that parses is re-serialized for a
// server, as the proxy does.

#include "http/header_rewrite.h"
#include "test/fuzz/feed.h"

using namespace crest::http;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  size_t step = 1 + data[0] % 64;
  Http1Parser parser(Http1Parser::Kind::Request, ParserLimits{4096, 50});
  evbuffer* out = evbuffer_new();
  crest::fuzz::feedInSteps(parser, data + 1, size - 1, step, 64, out, [&](const MessageHead& head) {
    ForwardInfo info{"192.0.2.1", "http", "id", "backend:80"};
    std::string_view written = writeUpstreamRequestHead(head, head.target, info);
    evbuffer_add(out, written.data(), written.size());
  });
  evbuffer_free(out);
  return 0;
}
