#include "http/body_encoder.h"

#include <cstdio>

namespace crest::http {

void BodyEncoder::chunkHeader(size_t len) {
  char line[24];
  int n = std::snprintf(line, sizeof line, "%zx\r\n", len);
  evbuffer_add(out_, line, static_cast<size_t>(n));
}

bool BodyEncoder::tapRoom(size_t len) {
  if (tap_ == nullptr) return false;
  if (tap_->size() + len <= tap_max_) return true;
  tap_ = nullptr;
  tap_overflowed_ = true;
  return false;
}

void BodyEncoder::copy(const char* data, size_t len) {
  if (len == 0) return;
  if (tapRoom(len)) tap_->append(data, len);
  if (chunked_) chunkHeader(len);
  evbuffer_add(out_, data, len);
  if (chunked_) evbuffer_add(out_, "\r\n", 2);
}

void BodyEncoder::move(evbuffer* from, size_t len) {
  if (len == 0) return;
  if (tapRoom(len)) {
    size_t at = tap_->size();
    tap_->resize(at + len);
    evbuffer_copyout(from, tap_->data() + at, len);
  }
  if (chunked_) chunkHeader(len);
  evbuffer_remove_buffer(from, out_, len);
  if (chunked_) evbuffer_add(out_, "\r\n", 2);
}

void BodyEncoder::finish() {
  if (chunked_) evbuffer_add(out_, "0\r\n\r\n", 5);
}

}  // namespace crest::http
