#pragma once
// evbuffer <-> std::string helpers for tests.

#include <event2/buffer.h>

#include <memory>
#include <string>

namespace crest::test {

struct EvbufferFree {
  void operator()(evbuffer* b) const { evbuffer_free(b); }
};
using Evbuffer = std::unique_ptr<evbuffer, EvbufferFree>;

inline Evbuffer makeBuffer(const std::string& text = "") {
  Evbuffer b(evbuffer_new());
  evbuffer_add(b.get(), text.data(), text.size());
  return b;
}

inline std::string text(evbuffer* b) {
  std::string out(evbuffer_get_length(b), '\0');
  evbuffer_copyout(b, out.data(), out.size());
  return out;
}

// The buffer's text, drained from it.
inline std::string takeText(evbuffer* b) {
  std::string out = text(b);
  evbuffer_drain(b, out.size());
  return out;
}

}  // namespace crest::test
