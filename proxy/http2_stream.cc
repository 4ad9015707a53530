#include "proxy/http2_stream.h"

#include <openssl/evp.h>

#include <charconv>
#include <cstring>

#include "http/header_rewrite.h"
#include "proxy/exchange.h"
#include "proxy/http2_session.h"
#include "proxy/router.h"
#include "proxy/worker_context.h"

namespace crest::proxy {

using namespace http;

namespace {

// HPACK's size of a field (RFC 7541 4.1): what SETTINGS_MAX_HEADER_LIST_SIZE counts.
constexpr uint64_t kFieldOverhead = 32;

nghttp2_nv field(std::string_view name, std::string_view value) {
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
          NGHTTP2_NV_FLAG_NONE};
}

// A Sec-WebSocket-Key: 16 random bytes in base64 (RFC 6455 4.1).
std::string webSocketKey(WorkerContext& worker) {
  unsigned char nonce[16];
  for (size_t i = 0; i < sizeof nonce; i += 8) {
    uint64_t r = worker.random();
    std::memcpy(nonce + i, &r, 8);
  }
  unsigned char key[25];
  EVP_EncodeBlock(key, nonce, sizeof nonce);
  return std::string(reinterpret_cast<char*>(key), 24);
}

}  // namespace

Http2Stream::Http2Stream(Http2Session& session, int32_t id, std::unique_ptr<Exchange> exchange)
    : session_(session),
      id_(id),
      exchange_(std::move(exchange)),
      body_in_(session.worker_.takeBuffer()),
      out_(session.worker_.takeBuffer()) {
  const Http2Carrier& carrier = session_.carrier_;
  exchange_->bind(*this, carrier.clientInfo(), session_.worker_, carrier.runtime(),
                  carrier.listenerRuntime());
  MessageHead& head = exchange_->request_parser.head();
  head.clear();
  head.version_major = 2;
  head.version_minor = 0;
}

Http2Stream::~Http2Stream() {
  exchange_->release();
  session_.worker_.recycleExchange(std::move(exchange_));
  session_.worker_.recycleBuffer(body_in_);
  session_.worker_.recycleBuffer(out_);
}

void Http2Stream::onHeader(std::string_view name, std::string_view value) {
  const auto& limits = session_.carrier_.runtime().config().limits;
  MessageHead& head = exchange_->request_parser.head();
  head_bytes_ += name.size() + value.size() + kFieldOverhead;
  if (head_bytes_ > limits.max_header_bytes || head.headers.size() >= limits.max_headers) {
    head_too_large_ = true;
    return;
  }
  if (!name.empty() && name.front() == ':') {
    if (name == ":method") head.method.assign(value);
    if (name == ":path") head.target.assign(value);
    if (name == ":authority") authority_.assign(value);
    if (name == ":protocol") websocket_ = value == "websocket";
    return;  // :scheme says how the client reached crest, not the server
  }
  if (name == "host") {
    host_field_.assign(value);
    return;
  }
  if (name == "cookie") {
    if (!cookies_.empty()) cookies_ += "; ";
    cookies_.append(value);
    return;
  }
  if (name == "content-length") {
    // nghttp2 has checked that it is a number and will check the DATA against it.
    std::from_chars(value.data(), value.data() + value.size(), head.content_length);
    saw_content_length_ = true;
  }
  HeaderField& f = head.headers.add();
  f.name.assign(name);
  f.value.assign(value);
  if (hasUnderscore(name)) {
    f.id = HeaderName::Underscored;
    ++head.underscored_fields;
  } else {
    f.id = classifyHeaderName(name);
  }
}

void Http2Stream::onHeadersEnd(bool end_stream) {
  MessageHead& head = exchange_->request_parser.head();
  if (!cookies_.empty()) {
    HeaderField& f = head.headers.add();
    f.name = "cookie";
    f.value = cookies_;
  }
  std::string host = authority_.empty() ? host_field_ : authority_;
  if (!host.empty()) {
    HeaderField& f = head.headers.add();
    f.name = "host";
    f.value = host;
    f.id = HeaderName::Host;
  }
  bool connect = head.method == "CONNECT";
  if (connect && websocket_) {
    // RFC 8441's WebSocket becomes HTTP/1.1's handshake towards the server,
    // which needs a key; its Sec-WebSocket-Accept proves only that it read it.
    head.method = "GET";
    head.upgrade_websocket = true;
    HeaderField& f = head.headers.add();
    f.name = "sec-websocket-key";
    f.value = webSocketKey(session_.worker_);
  }
  // A tunnel's DATA is not a body: it goes on only once the server switched.
  head.framing = end_stream || connect ? Framing::None
                 : saw_content_length_ ? Framing::ContentLength
                                       : Framing::Chunked;
  request_ended_ = end_stream;
  exchange_->begin();
  exchange_->request_complete = end_stream;
  exchange_->target = head.target;
  const auto& limits = session_.carrier_.runtime().config().limits;
  if (head_too_large_) {
    exchange_->answer(LocalCause::HeadTooLarge, "the request's header fields are larger than " +
                                                    std::to_string(limits.max_header_bytes) +
                                                    " bytes or more than " +
                                                    std::to_string(limits.max_headers));
    return;
  }
  if (connect && !websocket_) {
    exchange_->answer(LocalCause::BadRequest, "CONNECT is supported only for WebSocket");
    return;
  }
  session_.schedule(id_);
  exchange_->serve(hostWithoutPort(host));
}

void Http2Stream::onData(const uint8_t* data, size_t length) {
  if (done_) {
    // Answered already (a refusal, a cached response): the rest is dropped.
    nghttp2_session_consume(session_.session_, id_, length);
    return;
  }
  evbuffer_add(body_in_, data, length);
  session_.schedule(id_);
}

void Http2Stream::onEndStream() {
  request_ended_ = true;
  session_.schedule(id_);
}

bool Http2Stream::pump() {
  bool progress = false;
  bool tunnel = exchange_->upstream.tunneling();
  bool body_moves = !exchange_->request().upgrade_websocket || tunnel;
  if (!done_ && body_moves && exchange_->request_body.ready() && !exchange_->request_complete) {
    size_t waiting = evbuffer_get_length(exchange_->request_out);
    size_t take = std::min(evbuffer_get_length(body_in_),
                           waiting < kWindowBytes ? kWindowBytes - waiting : 0);
    if (take > 0) {
      exchange_->request_body.move(body_in_, take);
      nghttp2_session_consume(session_.session_, id_, take);
      progress = true;
    }
    received_ += take;
    if (!tunnel && !exchange_->bodyWithinLimit(received_)) return true;
    if (request_ended_ && evbuffer_get_length(body_in_) == 0) {
      exchange_->request_body.finish();
      exchange_->request_complete = true;
      progress = true;
    }
  }
  if (exchange_->upstream.active()) progress |= exchange_->upstream.drive(*exchange_);
  if (deferred_ && (evbuffer_get_length(out_) > 0 || done_)) {
    deferred_ = false;
    nghttp2_session_resume_data(session_.session_, id_);
    progress = true;
  }
  return progress;
}

void Http2Stream::onClosed() {
  if (!done_) {
    // The client reset the stream, or the connection ends, before the response did.
    done_ = true;
    exchange_->cause = LocalCause::ClientClosed;
    exchange_->record();
  }
  exchange_->release();
}

void Http2Stream::submit(int status, std::string_view extras, bool with_body) {
  Http2Session::HeadScratch& head = session_.head_;
  char status_text[4];
  std::to_chars(status_text, status_text + 3, status);
  head.nva.clear();
  head.nva.push_back(field(":status", std::string_view(status_text, 3)));
  // Names go as the server wrote them: nghttp2's copy lower-cases them.
  for (const auto& [name, value] : head.fields) head.nva.push_back(field(name, value));
  while (!extras.empty()) {
    size_t end = extras.find("\r\n");
    std::string_view line = extras.substr(0, end);
    size_t colon = line.find(':');
    if (colon != std::string_view::npos) {
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      head.nva.push_back(field(line.substr(0, colon), value));
    }
    if (end == std::string_view::npos) break;
    extras.remove_prefix(end + 2);
  }
  nghttp2_data_provider body{};
  body.source.ptr = this;
  body.read_callback = &Http2Stream::readBody;
  nghttp2_submit_response(session_.session_, id_, head.nva.data(), head.nva.size(),
                          with_body ? &body : nullptr);
}

bool Http2Stream::bodyFollows(bool empty) const {
  return exchange_->request().method != "HEAD" && !(empty && exchange_->request_complete);
}

BodyEncoder Http2Stream::sendResponseHead(const MessageHead& response, std::string_view extras) {
  auto& fields = session_.head_.fields;
  forwardedResponseFields(response, fields);
  if (response.status == 101) {
    // The tunnel is open: HTTP/2 says so with a 200 (RFC 8441 5), and the
    // stream's DATA carries it.
    std::erase_if(fields,
                  [](const auto& f) { return equalsIgnoreCase(f.first, "sec-websocket-accept"); });
    submit(200, extras, true);
    return BodyEncoder(out_, false);
  }
  char length[24];
  if (response.framing == Framing::ContentLength) {
    auto end = std::to_chars(length, length + sizeof(length), response.content_length).ptr;
    fields.emplace_back("content-length", std::string_view(length, end - length));
  }
  bool with_body = response.status != 204 && response.status != 304 &&
                   bodyFollows(response.framing == Framing::None);
  submit(response.status, extras, with_body);
  return BodyEncoder(out_, false);
}

void Http2Stream::sendStoredResponse(int status, std::string_view, std::string_view lines,
                                     std::shared_ptr<const cache::StoredResponse> entry,
                                     bool with_body, std::string_view extras) {
  std::string all(lines);
  if (status != 304) all += "content-length: " + std::to_string(entry->body.size()) + "\r\n";
  all.append(extras);
  session_.head_.fields.clear();
  submit(status, all, with_body);
  if (with_body) evbuffer_add(out_, entry->body.data(), entry->body.size());
}

void Http2Stream::sendLocalResponse(LocalCause, int status, std::string_view content_type,
                                    std::string_view body, std::string_view extras) {
  std::string length = std::to_string(body.size());
  auto& fields = session_.head_.fields;
  fields.clear();
  fields.emplace_back("content-type", content_type);
  fields.emplace_back("content-length", length);
  bool with_body = bodyFollows(body.empty());
  submit(status, extras, with_body);
  if (with_body) evbuffer_add(out_, body.data(), body.size());
}

void Http2Stream::sendContinue() {
  nghttp2_nv status = field(":status", "100");
  nghttp2_submit_headers(session_.session_, NGHTTP2_FLAG_NONE, id_, nullptr, &status, 1, nullptr);
}

void Http2Stream::exchangeDone() {
  done_ = true;
  session_.schedule(id_);  // the end of the body goes out (resume_data)
  // A body not read to its end is dropped from now on (onData), and its
  // window given back, so that the client can finish sending.
  size_t unread = evbuffer_get_length(body_in_);
  if (unread > 0) {
    evbuffer_drain(body_in_, unread);
    nghttp2_session_consume(session_.session_, id_, unread);
  }
}

void Http2Stream::reset(LocalCause cause) {
  if (cause != LocalCause::None) exchange_->cause = cause;
  done_ = true;
  exchange_->record();
  exchange_->release();
  nghttp2_submit_rst_stream(session_.session_, NGHTTP2_FLAG_NONE, id_, NGHTTP2_INTERNAL_ERROR);
}

void Http2Stream::waitFor(std::chrono::milliseconds timeout) {
  if (!wait_timer_) wait_timer_.emplace(session_.worker_.loop(), &Http2Stream::onWaitTimer, this);
  wait_timer_->setIn(timeout);
}

void Http2Stream::waitOver() {
  if (wait_timer_) wait_timer_->clear();
}

void Http2Stream::onWaitTimer(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Http2Stream*>(arg);
  if (!self->wait_timer_->expired() || !self->exchange_->timedWait()) return;
  self->exchange_->onWaitTimeout();
  self->wake();
}

void Http2Stream::wake() {
  session_.schedule(id_);
  session_.carrier_.wakeConnection();
}

ssize_t Http2Stream::readBody(nghttp2_session*, int32_t, uint8_t*, size_t length,
                              uint32_t* data_flags, nghttp2_data_source* source, void*) {
  auto* self = static_cast<Http2Stream*>(source->ptr);
  size_t waiting = evbuffer_get_length(self->out_);
  // The bytes stay in out_ until the frame goes out (sendBody): nghttp2
  // copies nothing, and the frame's header is all it writes.
  size_t taken = std::min(length, waiting);
  *data_flags |= NGHTTP2_DATA_FLAG_NO_COPY;
  if (taken == waiting && self->done_) {
    *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(taken);
  }
  if (taken == 0) {
    self->deferred_ = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  return static_cast<ssize_t>(taken);
}

void Http2Stream::sendBody(evbuffer* to, size_t length) {
  evbuffer_remove_buffer(out_, to, length);
  // Room in the stream's output: its server may be read again.
  if (length > 0 && exchange_->upstream.active()) session_.schedule(id_);
}

}  // namespace crest::proxy
