#pragma once
// Writes body bytes to an output buffer in the framing chosen for the side it
// faces: as they are (Content-Length, or until close) or as chunks. Bytes that
// arrive in an evbuffer are moved, not copied.

#include <event2/buffer.h>

#include <cstddef>
#include <string>

namespace crest::http {

class BodyEncoder {
 public:
  BodyEncoder() = default;
  BodyEncoder(evbuffer* out, bool chunked) : out_(out), chunked_(chunked) {}

  void copy(const char* data, size_t len);
  void move(evbuffer* from, size_t len);
  // The last chunk, for chunked framing; nothing otherwise.
  void finish();
  // Also copies the body bytes (unframed) into `into`, up to `max` bytes;
  // beyond that the copy stops and tapOverflowed() says so.
  void tap(std::string* into, size_t max) {
    tap_ = into;
    tap_max_ = max;
  }
  bool tapOverflowed() const { return tap_overflowed_; }
  // Whether it has somewhere to write: a request's body encoder is set once
  // the request goes to a server.
  bool ready() const { return out_ != nullptr; }

 private:
  void chunkHeader(size_t len);
  // Whether `len` more bytes fit in the tap (and stops tapping when not).
  bool tapRoom(size_t len);

  evbuffer* out_ = nullptr;
  bool chunked_ = false;
  std::string* tap_ = nullptr;
  size_t tap_max_ = 0;
  bool tap_overflowed_ = false;
};

}  // namespace crest::http
