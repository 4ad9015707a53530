#pragma once
// The read loop the fuzz targets share: feeds input to a parser `step` bytes
// a read, as a connection would, handing each parsed head to `on_head`.

#include <event2/buffer.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "http/body_encoder.h"
#include "http/http1_parser.h"

namespace crest::fuzz {

template <typename OnHead>
void feedInSteps(http::Http1Parser& parser, const uint8_t* data, size_t size, size_t step,
                 int max_messages, evbuffer* out, OnHead&& on_head) {
  using Event = http::Http1Parser::Event;
  evbuffer* in = evbuffer_new();
  http::BodyEncoder encoder(out, true);
  size_t fed = 0;
  for (int messages = 0; messages < max_messages;) {
    Event ev = parser.parse(in, encoder, 1 << 16);
    if (ev == Event::Error) break;
    if (ev == Event::Head) {
      on_head(parser.head());
      continue;
    }
    if (ev == Event::Complete) {
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
}

}  // namespace crest::fuzz
