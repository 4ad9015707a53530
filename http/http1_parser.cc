#include "http/http1_parser.h"

#include <algorithm>
#include <cstring>

namespace crest::http {
namespace {

Http1Parser* self(llhttp_t* p) {
  return static_cast<Http1Parser*>(p->data);
}

bool allDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

const llhttp_settings_t& Http1Parser::settings() {
  static const llhttp_settings_t s = [] {
    llhttp_settings_t st;
    llhttp_settings_init(&st);
    st.on_message_begin = &Http1Parser::onMessageBegin;
    st.on_url = &Http1Parser::onUrl;
    st.on_url_complete = &Http1Parser::onUrlComplete;
    st.on_status = &Http1Parser::onStatus;
    st.on_method = &Http1Parser::onMethod;
    st.on_header_field = &Http1Parser::onHeaderField;
    st.on_header_value = &Http1Parser::onHeaderValue;
    st.on_header_value_complete = &Http1Parser::onHeaderValueComplete;
    st.on_headers_complete = &Http1Parser::onHeadersComplete;
    st.on_body = &Http1Parser::onBody;
    st.on_message_complete = &Http1Parser::onMessageComplete;
    return st;
  }();
  return s;
}

Http1Parser::Http1Parser(Kind kind, ParserLimits limits) : kind_(kind) {
  restart(limits);
}

void Http1Parser::restart(ParserLimits limits) {
  llhttp_init(&parser_, kind_ == Kind::Request ? HTTP_REQUEST : HTTP_RESPONSE, &settings());
  parser_.data = this;
  limits_ = limits;
  no_body_ = false;
  error_status_ = 0;
  callback_error_status_ = 0;
  error_reason_.clear();
  nextMessage();
}

int Http1Parser::onMessageBegin(llhttp_t* p) {
  Http1Parser* s = self(p);
  s->head_.clear();
  s->part_ = HeadPart::None;
  s->url_complete_ = false;
  return 0;
}

int Http1Parser::onUrl(llhttp_t* p, const char* at, size_t len) {
  self(p)->head_.target.append(at, len);
  return 0;
}

int Http1Parser::onUrlComplete(llhttp_t* p) {
  self(p)->url_complete_ = true;
  return 0;
}

int Http1Parser::onStatus(llhttp_t* p, const char* at, size_t len) {
  self(p)->head_.reason.append(at, len);
  return 0;
}

int Http1Parser::onMethod(llhttp_t* p, const char* at, size_t len) {
  self(p)->head_.method.append(at, len);
  return 0;
}

int Http1Parser::onHeaderField(llhttp_t* p, const char* at, size_t len) {
  Http1Parser* s = self(p);
  if (s->part_ != HeadPart::Name) {
    if (s->head_.headers.size() >= s->limits_.max_headers) {
      s->callback_error_status_ = s->kind_ == Kind::Request ? 431 : 502;
      llhttp_set_error_reason(p, "too many header fields");
      return HPE_USER;
    }
    s->head_.headers.add();
    s->part_ = HeadPart::Name;
  }
  s->head_.headers.back().name.append(at, len);
  return 0;
}

int Http1Parser::startValue(llhttp_t* p) {
  // A value with no name before it would otherwise continue the previous
  // header's value (": x" after "Host: a" reads as "Host: ax").
  if (part_ != HeadPart::Name || head_.headers.back().name.empty()) {
    callback_error_status_ = kind_ == Kind::Request ? 400 : 502;
    llhttp_set_error_reason(p, "empty header name");
    return HPE_USER;
  }
  HeaderField& f = head_.headers.back();
  f.id = classifyHeaderName(f.name);
  if (kind_ == Kind::Request && f.id == HeaderName::Other && hasUnderscore(f.name)) {
    f.id = HeaderName::Underscored;
    ++head_.underscored_fields;
  }
  part_ = HeadPart::Value;
  return 0;
}

int Http1Parser::onHeaderValue(llhttp_t* p, const char* at, size_t len) {
  Http1Parser* s = self(p);
  if (s->part_ != HeadPart::Value) {
    if (int err = s->startValue(p)) return err;
  }
  s->head_.headers.back().value.append(at, len);
  return 0;
}

int Http1Parser::onHeaderValueComplete(llhttp_t* p) {
  Http1Parser* s = self(p);
  if (s->part_ != HeadPart::Value) {
    // An empty value: llhttp calls no on_header_value for it.
    if (int err = s->startValue(p)) return err;
  } else {
    std::string& value = s->head_.headers.back().value;
    auto blank = [](char c) { return c == ' ' || c == '\t'; };
    if (!value.empty() && blank(value.back())) {
      size_t last = value.find_last_not_of(" \t");
      value.erase(last == std::string::npos ? 0 : last + 1);
    }
    if (!value.empty() && blank(value.front())) value.erase(0, value.find_first_not_of(" \t"));
  }
  s->part_ = HeadPart::Done;
  return 0;
}

int Http1Parser::onHeadersComplete(llhttp_t* p) {
  return self(p)->headersComplete();
}

std::string Http1Parser::validateHead() {
  const auto& h = head_;
  if (parser_.http_major != 1 || parser_.http_minor > 1) return "unsupported HTTP version";
  // One pass over the fields, then the verdicts in a fixed order. Control
  // characters in values need no check here: llhttp's strict mode refuses
  // them all (the parser tests try every one).
  size_t te_count = 0;
  size_t cl_count = 0;
  size_t hosts = 0;
  const std::string* te = nullptr;
  const std::string* first_cl = nullptr;
  const char* cl_problem = nullptr;
  for (const auto& f : h.headers) {
    if (f.id == HeaderName::Host) {
      ++hosts;
    } else if (f.id == HeaderName::TransferEncoding) {
      ++te_count;
      te = &f.value;
    } else if (f.id == HeaderName::ContentLength) {
      ++cl_count;
      if (cl_problem != nullptr) continue;
      if (!allDigits(f.value)) {
        cl_problem = "invalid Content-Length";
      } else if (first_cl != nullptr && *first_cl != f.value) {
        cl_problem = "conflicting Content-Length headers";
      }
      first_cl = &f.value;
    }
  }
  if (te_count > 0) {
    if (te_count > 1) return "more than one Transfer-Encoding header";
    if (cl_count > 0) return "both Content-Length and Transfer-Encoding";
    if (!equalsIgnoreCase(*te, "chunked")) {
      return "unsupported Transfer-Encoding (only chunked is accepted)";
    }
    if (parser_.http_minor == 0) return "Transfer-Encoding in an HTTP/1.0 message";
  }
  if (cl_problem != nullptr) return cl_problem;
  if (kind_ == Kind::Request) {
    if (hosts > 1) return "more than one Host header";
    if (hosts == 0 && parser_.http_minor == 1) return "missing Host header";
    if (parser_.method == HTTP_CONNECT) return "CONNECT is not supported";
  }
  return "";
}

int Http1Parser::headersComplete() {
  std::string problem = validateHead();
  if (!problem.empty()) {
    callback_error_status_ = kind_ == Kind::Request ? 400 : 502;
    error_reason_ = problem;
    return -1;
  }
  head_.version_minor = parser_.http_minor;
  head_.status = parser_.status_code;
  head_.keep_alive = llhttp_should_keep_alive(&parser_) != 0;
  if (kind_ == Kind::Request) {
    const std::string* expect = head_.find(HeaderName::Expect);
    head_.expect_continue = expect != nullptr && equalsIgnoreCase(*expect, "100-continue");
  }
  bool no_body = kind_ == Kind::Response &&
                 (no_body_ || head_.status < 200 || head_.status == 204 || head_.status == 304);
  if (no_body) {
    head_.framing = Framing::None;
  } else if (parser_.flags & F_CHUNKED) {
    head_.framing = Framing::Chunked;
  } else if (parser_.flags & F_CONTENT_LENGTH) {
    head_.content_length = parser_.content_length;
    head_.framing = head_.content_length > 0 ? Framing::ContentLength : Framing::None;
  } else {
    head_.framing = kind_ == Kind::Response ? Framing::UntilClose : Framing::None;
  }
  if (head_.framing == Framing::UntilClose) head_.keep_alive = false;
  // llhttp's upgrade flag: Upgrade and a Connection listing it, the cheap test first.
  if (kind_ == Kind::Request && parser_.upgrade && head_.framing == Framing::None &&
      parser_.http_minor == 1 && parser_.method == HTTP_GET) {
    head_.upgrade_websocket = head_.hasToken(HeaderName::Upgrade, "websocket");
  }
  pause_ = Pause::HeadComplete;
  if (head_.framing == Framing::Chunked || head_.framing == Framing::UntilClose) return HPE_PAUSED;
  // No body, or one we move ourselves: llhttp skips straight to message complete,
  // which pauses with pause_ still at HeadComplete.
  return 1;
}

int Http1Parser::onBody(llhttp_t* p, const char* at, size_t len) {
  Http1Parser* s = self(p);
  s->body_bytes_ += len;
  s->body_->copy(at, len);
  return 0;
}

int Http1Parser::onMessageComplete(llhttp_t* p) {
  Http1Parser* s = self(p);
  if (s->pause_ != Pause::HeadComplete) s->pause_ = Pause::MessageComplete;
  return HPE_PAUSED;
}

const char* Http1Parser::scanHead(const char* data, size_t len) {
  // What llhttp lets through but peers may read differently: a header line
  // starting with a space or tab continues the previous one (obs-fold), and
  // runs of spaces in the first line shift its fields.
  if (len == 0) return nullptr;
  size_t i = 0;
  if (kind_ == Kind::Request) {
    for (; i < len && !past_first_line_; ++i) {
      char c = data[i];
      if (c == ' ' && (previous_byte_ == ' ' || previous_byte_ == 0)) {
        return "extra spaces in the first line";
      }
      past_first_line_ = c == '\n';
      previous_byte_ = c;
    }
  }
  // Line starts: after a newline of an earlier read, then after each newline here.
  if (i < len && previous_byte_ == '\n' && (data[i] == ' ' || data[i] == '\t')) {
    return "obsolete line folding";
  }
  while (i < len) {
    const void* newline = std::memchr(data + i, '\n', len - i);
    if (newline == nullptr) break;
    size_t next = static_cast<size_t>(static_cast<const char*>(newline) - data) + 1;
    if (next < len && (data[next] == ' ' || data[next] == '\t')) return "obsolete line folding";
    past_first_line_ = true;
    i = next;
  }
  previous_byte_ = data[len - 1];
  return nullptr;
}

Http1Parser::Event Http1Parser::fail(int status, std::string reason) {
  state_ = State::Error;
  error_status_ = status;
  error_reason_ = std::move(reason);
  return Event::Error;
}

Http1Parser::Event Http1Parser::afterPause() {
  Pause pause = pause_;
  pause_ = Pause::None;
  if (pause == Pause::HeadComplete) {
    switch (head_.framing) {
      case Framing::ContentLength:
        state_ = State::LengthBody;
        remaining_ = head_.content_length;
        break;
      case Framing::None:
        state_ = State::Done;
        break;
      default:
        state_ = State::LlhttpBody;
    }
    return Event::Head;
  }
  body_->finish();
  state_ = State::Done;
  return Event::Complete;
}

Http1Parser::Event Http1Parser::parse(evbuffer* in, BodyEncoder& body, size_t body_budget) {
  body_ = &body;
  size_t budget = body_budget;
  while (true) {
    switch (state_) {
      case State::Error:
        return Event::Error;
      case State::Done:
        // The message ended (for a bodiless one, right after its head).
        return Event::Complete;
      case State::LengthBody: {
        size_t n = std::min<uint64_t>({remaining_, evbuffer_get_length(in), budget});
        body.move(in, n);
        remaining_ -= n;
        body_bytes_ += n;
        budget -= n;
        if (remaining_ == 0) {
          body.finish();
          state_ = State::Done;
          return Event::Complete;
        }
        return Event::NeedMore;
      }
      case State::Head:
      case State::LlhttpBody: {
        if (evbuffer_get_length(in) == 0) return Event::NeedMore;
        evbuffer_iovec vec;
        evbuffer_peek(in, -1, nullptr, &vec, 1);
        size_t consumed = 0;
        std::optional<Event> ev =
            execute(static_cast<const char*>(vec.iov_base), vec.iov_len, budget, consumed);
        evbuffer_drain(in, consumed);
        if (ev) return *ev;
        break;
      }
    }
  }
}

Http1Parser::Event Http1Parser::parse(std::string_view fresh, evbuffer* in, BodyEncoder& body,
                                      size_t body_budget) {
  if (fresh.empty()) return parse(in, body, body_budget);
  Event ev = parseHead(fresh);
  if (!fresh.empty()) evbuffer_add(in, fresh.data(), fresh.size());
  return ev == Event::NeedMore ? parse(in, body, body_budget) : ev;
}

Http1Parser::Event Http1Parser::parseHead(std::string_view& bytes) {
  if (state_ != State::Head || bytes.empty()) return Event::NeedMore;
  size_t budget = 0;
  size_t consumed = 0;
  std::optional<Event> ev = execute(bytes.data(), bytes.size(), budget, consumed);
  bytes.remove_prefix(consumed);
  return ev.value_or(Event::NeedMore);
}

std::optional<Http1Parser::Event> Http1Parser::execute(const char* data, size_t len, size_t& budget,
                                                       size_t& consumed) {
  if (state_ == State::Head) {
    // Never parse past the head limit: one byte over it proves the overflow.
    len = std::min<uint64_t>(len, limits_.max_head_bytes + 1 - head_bytes_);
  } else {
    if (budget == 0) return Event::NeedMore;
    len = std::min(len, budget);
  }
  uint64_t body_before = body_bytes_;
  llhttp_errno_t err = llhttp_execute(&parser_, data, len);
  consumed = err == HPE_OK ? len : static_cast<size_t>(llhttp_get_error_pos(&parser_) - data);
  if (state_ == State::Head) {
    head_bytes_ += consumed;
    if (const char* problem = scanHead(data, consumed)) {
      return fail(kind_ == Kind::Request ? 400 : 502, problem);
    }
  }
  budget -= std::min<uint64_t>(budget, body_bytes_ - body_before);
  if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
    if (err == HPE_PAUSED_UPGRADE) {
      llhttp_resume_after_upgrade(&parser_);
    } else {
      llhttp_resume(&parser_);
    }
    return afterPause();
  }
  if (err != HPE_OK) {
    int status =
        callback_error_status_ ? callback_error_status_ : (kind_ == Kind::Request ? 400 : 502);
    std::string reason = !error_reason_.empty() ? error_reason_ : llhttp_get_error_reason(&parser_);
    return fail(status, reason);
  }
  if (state_ == State::Head && head_bytes_ > limits_.max_head_bytes) {
    if (kind_ == Kind::Response) return fail(502, "response head too large");
    return url_complete_ ? fail(431, "request header fields too large")
                         : fail(414, "request URI too long");
  }
  return std::nullopt;
}

Http1Parser::Event Http1Parser::finishAtEof(BodyEncoder& body) {
  body_ = &body;
  if (state_ == State::Head && head_bytes_ == 0) return Event::NeedMore;
  if (state_ == State::LlhttpBody && head_.framing == Framing::UntilClose) {
    llhttp_errno_t err = llhttp_finish(&parser_);
    if (err == HPE_OK || err == HPE_PAUSED) {
      body.finish();
      state_ = State::Done;
      return Event::Complete;
    }
  }
  if (state_ == State::Done) return Event::Complete;
  return fail(kind_ == Kind::Request ? 400 : 502, "connection closed in the middle of a message");
}

void Http1Parser::nextMessage() {
  state_ = State::Head;
  pause_ = Pause::None;
  head_bytes_ = 0;
  body_bytes_ = 0;
  remaining_ = 0;
  previous_byte_ = 0;
  past_first_line_ = false;
}

}  // namespace crest::http
