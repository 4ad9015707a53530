#pragma once
// Incremental HTTP/1 parser for one connection, on top of llhttp in its strict
// mode plus the checks a proxy needs against ambiguous framing. Heads are
// collected into MessageHead; body bytes go to a BodyEncoder, de-chunked.
// Content-Length bodies bypass llhttp and are moved as evbuffer chains.
// Not thread-safe; one per connection side.

#include <event2/buffer.h>
#include <llhttp.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "http/body_encoder.h"
#include "http/http_message.h"

namespace crest::http {

struct ParserLimits {
  uint64_t max_head_bytes = 16 * 1024;  // request/status line + headers
  uint32_t max_headers = 100;
};

class Http1Parser {
 public:
  enum class Kind { Request, Response };
  enum class Event {
    NeedMore,  // all input used (or the body budget): feed more later
    Head,      // head() is complete; body bytes follow on the next calls
    Complete,  // the message ended; call nextMessage() before parsing on
    Error,     // errorStatus()/errorReason() say why; the connection is unusable
  };

  Http1Parser(Kind kind, ParserLimits limits);
  Http1Parser(const Http1Parser&) = delete;
  Http1Parser& operator=(const Http1Parser&) = delete;

  // Consumes from `in`. Body bytes go to `body`, at most `body_budget` per call
  // so the caller can stop while its output is full.
  Event parse(evbuffer* in, BodyEncoder& body, size_t body_budget);
  // The same for input that starts with `fresh` bytes not in a buffer (a
  // read left in the worker's scratch memory, readInto's `kept`; `in` is
  // then empty): a head among them is parsed where it is, and what follows
  // it is added to `in`, where parsing goes on.
  Event parse(std::string_view fresh, evbuffer* in, BodyEncoder& body, size_t body_budget);
  // The head part of that: consumes from the front of `bytes` up to the
  // head's end (Head), an error (Error), or all of them (NeedMore). Takes
  // nothing unless awaitingHead().
  Event parseHead(std::string_view& bytes);
  // The peer closed its side: Complete for an until-close body, NeedMore when
  // between messages, Error when a message was cut short.
  Event finishAtEof(BodyEncoder& body);
  // Responses: the request was HEAD, so the next response head has no body.
  void setNoBody(bool no_body) { no_body_ = no_body; }
  void nextMessage();
  // As if newly made, for another connection, keeping its buffers.
  void restart(ParserLimits limits);

  const MessageHead& head() const { return head_; }
  MessageHead& head() { return head_; }
  // Whether any byte of the current message has arrived.
  bool started() const { return state_ != State::Head || head_bytes_ > 0; }
  bool inBody() const { return state_ == State::LlhttpBody || state_ == State::LengthBody; }
  bool awaitingHead() const { return state_ == State::Head; }
  uint64_t bodyBytes() const { return body_bytes_; }
  int errorStatus() const { return error_status_; }
  const std::string& errorReason() const { return error_reason_; }

 private:
  enum class State { Head, LlhttpBody, LengthBody, Done, Error };
  enum class Pause { None, HeadComplete, MessageComplete };

  static int onMessageBegin(llhttp_t* p);
  static int onUrl(llhttp_t* p, const char* at, size_t len);
  static int onUrlComplete(llhttp_t* p);
  static int onStatus(llhttp_t* p, const char* at, size_t len);
  static int onMethod(llhttp_t* p, const char* at, size_t len);
  static int onHeaderField(llhttp_t* p, const char* at, size_t len);
  static int onHeaderValue(llhttp_t* p, const char* at, size_t len);
  static int onHeaderValueComplete(llhttp_t* p);
  static int onHeadersComplete(llhttp_t* p);
  static int onBody(llhttp_t* p, const char* at, size_t len);
  static int onMessageComplete(llhttp_t* p);
  static const llhttp_settings_t& settings();

  int headersComplete();
  // Checks the field's name once its value begins; an llhttp error code or 0.
  int startValue(llhttp_t* p);
  // Checks beyond llhttp's; "" when the head is acceptable.
  std::string validateHead();
  Event fail(int status, std::string reason);
  // Checks head bytes as they are consumed; the reason to refuse them, or null.
  const char* scanHead(const char* data, size_t len);
  Event afterPause();
  // Runs llhttp over head or llhttp-framed body bytes, within the head limit
  // and the body `budget`; `consumed`: how many it took. An event to return,
  // or none when all were taken and more may follow.
  std::optional<Event> execute(const char* data, size_t len, size_t& budget, size_t& consumed);

  llhttp_t parser_;
  Kind kind_;
  ParserLimits limits_;
  State state_ = State::Head;
  Pause pause_ = Pause::None;
  MessageHead head_;
  // Where the head's current header line stands.
  enum class HeadPart { None, Name, Value, Done };
  HeadPart part_ = HeadPart::None;
  bool url_complete_ = false;
  bool no_body_ = false;
  uint64_t head_bytes_ = 0;
  char previous_byte_ = 0;  // last head byte seen, for checks across reads
  bool past_first_line_ = false;
  uint64_t remaining_ = 0;  // LengthBody
  uint64_t body_bytes_ = 0;
  BodyEncoder* body_ = nullptr;  // valid during parse() only
  int error_status_ = 0;
  int callback_error_status_ = 0;  // set by a callback that refused the message
  std::string error_reason_;
};

}  // namespace crest::http
