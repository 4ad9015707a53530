#pragma once
// Writes body bytes to an output buffer in the framing chosen for the side it
// faces: as they are (Content-Length, or until close) or as chunks. Bytes that
// arrive in an evbuffer are moved, not copied.

#include <event2/buffer.h>

#include <cstddef>

namespace crest::proxy {

class BodyEncoder {
 public:
  BodyEncoder() = default;
  BodyEncoder(evbuffer* out, bool chunked) : out_(out), chunked_(chunked) {}

  void copy(const char* data, size_t len);
  void move(evbuffer* from, size_t len);
  // The last chunk, for chunked framing; nothing otherwise.
  void finish();

 private:
  void chunkHeader(size_t len);

  evbuffer* out_ = nullptr;
  bool chunked_ = false;
};

}  // namespace crest::proxy
