#pragma once
// One HTTP/2 stream of a client connection: the exchange it carries, and
// that exchange's client. The request head is built from the stream's
// header fields (`:authority` becomes Host; a body without content-length
// goes to the server chunked); DATA waits here until the exchange has a
// server to send it to, and the stream's receive window is given back only
// as it goes on. The response body waits in `out_` for the client's window:
// at most kWindowBytes before the exchange stops reading the server.
// Worker-thread only.

#include <event2/buffer.h>
#include <nghttp2/nghttp2.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "io/deadline_timer.h"
#include "proxy/exchange_client.h"

namespace crest::proxy {

class Exchange;
class Http2Session;

class Http2Stream final : public ExchangeClient {
 public:
  Http2Stream(Http2Session& session, int32_t id, std::unique_ptr<Exchange> exchange);
  // Gives the exchange back to the worker, released.
  ~Http2Stream() override;
  Http2Stream(const Http2Stream&) = delete;
  Http2Stream& operator=(const Http2Stream&) = delete;

  // The request's header fields, validated by nghttp2 (names lower case, no
  // CR/LF/NUL in values, no connection-specific fields).
  void onHeader(std::string_view name, std::string_view value);
  // The head is complete: the exchange starts. `end_stream`: no body follows.
  void onHeadersEnd(bool end_stream);
  void onData(const uint8_t* data, size_t length);
  void onEndStream();
  // Moves the request body on and the exchange along; true when anything moved.
  bool pump();
  // The stream is gone (ended, reset by either side, or the connection closes).
  void onClosed();

  http::BodyEncoder sendResponseHead(const http::MessageHead& response,
                                     std::string_view extras) override;
  void sendStoredResponse(int status, std::string_view reason, std::string_view lines,
                          std::shared_ptr<const cache::StoredResponse> entry, bool with_body,
                          std::string_view extras) override;
  void sendLocalResponse(LocalCause cause, int status, std::string_view content_type,
                         std::string_view body, std::string_view extras) override;
  void sendContinue() override;
  size_t unsentBytes() const override { return evbuffer_get_length(out_); }
  void exchangeDone() override;
  void reset(LocalCause cause) override;
  void waitFor(std::chrono::milliseconds timeout) override;
  void waitOver() override;
  void wake() override;
  // The DATA frame nghttp2 asked readBody for goes out: `length` bytes of
  // the response body move (chains, not copies) to `to`, after its header.
  void sendBody(evbuffer* to, size_t length);

 private:
  static ssize_t readBody(nghttp2_session*, int32_t, uint8_t* buf, size_t length,
                          uint32_t* data_flags, nghttp2_data_source* source, void*);
  static void onWaitTimer(evutil_socket_t, short, void* arg);
  // Submits a response head of `status` with the session's scratch fields
  // plus the lines of `extras` ("Name: value\r\n"); a body follows from
  // out_ when `with_body`.
  void submit(int status, std::string_view extras, bool with_body);
  // Whether DATA frames follow a response head: not for HEAD, and not for
  // an `empty` body once the request is in (the HEADERS frame ends the
  // stream then, as HAProxy's does; before, it would tell the client to
  // stop an upload the server still reads).
  bool bodyFollows(bool empty) const;

  Http2Session& session_;
  const int32_t id_;
  std::unique_ptr<Exchange> exchange_;
  evbuffer* body_in_;  // DATA received, not yet given to the exchange
  evbuffer* out_;      // response body, not yet taken by nghttp2
  std::string authority_;
  std::string host_field_;  // a Host field, used without :authority
  std::string cookies_;     // Cookie fields, joined with "; " (RFC 9113 8.2.3)
  uint64_t head_bytes_ = 0;
  uint64_t received_ = 0;  // body bytes given to the exchange
  bool head_too_large_ = false;
  bool saw_content_length_ = false;
  bool websocket_ = false;      // :protocol is websocket (extended CONNECT)
  bool request_ended_ = false;  // END_STREAM received
  bool done_ = false;           // the response is complete (or the stream was reset)
  bool deferred_ = false;       // nghttp2 waits for body bytes: resume when they come
  std::optional<io::DeadlineTimer> wait_timer_;
};

}  // namespace crest::proxy
