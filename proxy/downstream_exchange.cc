// The HTTP/1 side of the exchange in flight on a DownstreamConnection: its
// request checked for what HTTP/1 defines and handed to the exchange, its
// body fed in, its responses written, and what follows a response.

#include <algorithm>
#include <utility>

#include "http/header_rewrite.h"
#include "proxy/downstream_connection.h"
#include "proxy/exchange.h"
#include "proxy/worker_context.h"

namespace crest::proxy {

using namespace http;

namespace {

// Splits an absolute-form target ("http://host/path?q") into host and origin-form path.
bool splitAbsoluteForm(const std::string& target, std::string& host, std::string& path) {
  size_t scheme_end = target.find("://");
  if (scheme_end == std::string::npos || target.front() == '/') return false;
  size_t authority = scheme_end + 3;
  size_t slash = target.find_first_of("/?", authority);
  host =
      target.substr(authority, slash == std::string::npos ? std::string::npos : slash - authority);
  std::string_view rest;
  if (slash != std::string::npos) rest = std::string_view(target).substr(slash);
  path.clear();
  if (rest.empty() || rest.front() != '/') path.push_back('/');
  path.append(rest);
  return true;
}

// Appends a stored body: large ones by reference, holding the entry until sent.
void addStoredBody(evbuffer* out, std::shared_ptr<const cache::StoredResponse> entry) {
  const std::string& body = entry->body;
  if (body.size() < 4096) {
    evbuffer_add(out, body.data(), body.size());
    return;
  }
  auto* hold = new std::shared_ptr<const cache::StoredResponse>(std::move(entry));
  evbuffer_add_reference(
      out, body.data(), body.size(),
      [](const void*, size_t, void* arg) {
        delete static_cast<std::shared_ptr<const cache::StoredResponse>*>(arg);
      },
      hold);
}

}  // namespace

void DownstreamConnection::startExchange() {
  // New requests take the newest configuration; a listener it removed keeps
  // serving this connection on the configuration it was accepted under.
  if (worker_.runtime() != runtime_) {
    if (const ListenerRuntime* l = worker_.runtime()->findListener(listener())) {
      runtime_ = worker_.runtime();
      listener_ = l;
      exchange_->bind(*this, client_, worker_, *runtime_, listener_);
    }
  }
  const MessageHead& head = exchange_->request();
  phase_ = Phase::Proxying;
  exchange_->begin();
  client_activity_ = worker_.clock().now();
  timer_.setIn(runtime_->config().timeouts.client_idle);

  const std::string* host_header = head.find(HeaderName::Host);
  std::string host = host_header != nullptr ? *host_header : std::string();
  exchange_->target = head.target;
  std::string absolute_host;
  if (splitAbsoluteForm(head.target, absolute_host, exchange_->target)) {
    if (!host.empty() && hostWithoutPort(host) != hostWithoutPort(absolute_host)) {
      exchange_->answer(LocalCause::BadRequest,
                        "the request target names another host than the Host header");
      return;
    }
    host = absolute_host;
  }
  exchange_->serve(hostWithoutPort(host));
}

bool DownstreamConnection::forwardRequestBody() {
  if (exchange_->request_complete) return false;
  size_t buffered = evbuffer_get_length(exchange_->request_out);
  if (buffered >= kWindowBytes) return false;
  if (exchange_->upstream.tunneling()) {
    // The client's bytes go as they are; its FIN ends its side of the tunnel.
    size_t n = std::min(bufferedBytes(in_), kWindowBytes - buffered);
    if (n > 0) exchange_->request_body.move(in_, n);
    if (client_eof_ && bufferedBytes(in_) == 0) {
      exchange_->request_complete = true;
      return true;
    }
    return n > 0;
  }
  size_t before = bufferedBytes(in_);
  Http1Parser::Event ev =
      exchange_->request_parser.parse(in_, exchange_->request_body, kWindowBytes - buffered);
  if (!exchange_->bodyWithinLimit(exchange_->request_parser.bodyBytes())) return true;
  switch (ev) {
    case Http1Parser::Event::Complete:
      exchange_->request_complete = true;
      return true;
    case Http1Parser::Event::Error:
      exchange_->refuse(requestErrorCause(exchange_->request_parser.errorStatus()),
                        exchange_->request_parser.errorReason());
      return true;
    default:
      if (client_eof_ && bufferedBytes(in_) == 0) {
        // The client went away in the middle of its request body.
        closeNow(LocalCause::ClientClosed);
        return true;
      }
      return bufferedBytes(in_) != before;
  }
}

BodyEncoder DownstreamConnection::sendResponseHead(const MessageHead& response,
                                                   std::string_view extras) {
  const MessageHead& request = exchange_->request();
  bool unframed = response.framing == Framing::Chunked || response.framing == Framing::UntilClose;
  bool chunked = unframed && request.version_minor >= 1;
  // A 101 opens a tunnel, whose end is the connection's.
  if (!request.keep_alive || worker_.draining() || (unframed && !chunked) || response.status == 101)
    close_after_response_ = true;
  std::string_view head = writeDownstreamResponseHead(response, request.version_minor, chunked,
                                                      close_after_response_, extras);
  // Behind bytes that wait in out_, the head waits there too; TLS writes out_ only.
  if (ssl_ == nullptr && bufferedBytes(out_) == 0) {
    exchange_->response_head.append(head);
  } else {
    evbuffer_add(out_, head.data(), head.size());
  }
  return BodyEncoder(out_, chunked);
}

void DownstreamConnection::sendStoredResponse(int status, std::string_view reason,
                                              std::string_view lines,
                                              std::shared_ptr<const cache::StoredResponse> entry,
                                              bool with_body, std::string_view extras) {
  const MessageHead& request = exchange_->request();
  if (!request.keep_alive || worker_.draining()) close_after_response_ = true;
  // Only bodiless GET and HEAD requests reach the cache: the request is read.
  if (!close_after_response_) exchange_->request_complete = true;
  writeStoredResponseHead(status, reason, lines, entry->body.size(), request.version_minor,
                          close_after_response_, out_, extras);
  if (with_body) addStoredBody(out_, std::move(entry));
}

void DownstreamConnection::sendLocalResponse(LocalCause cause, int status,
                                             std::string_view content_type, std::string_view body,
                                             std::string_view extras) {
  if (closesAfterLocal(cause)) close_after_response_ = true;
  if (!close_after_response_) exchange_->request_complete = true;
  writeProxyResponse(status, content_type, body, close_after_response_, out_, extras);
}

bool DownstreamConnection::closesAfterLocal(LocalCause cause) {
  // The connection goes on only after a refusal of a request that is wholly
  // read: after anything malformed, or with an unread body that cannot be
  // told apart from a next request, it closes.
  const MessageHead& request = exchange_->request();
  bool proxying = phase_ == Phase::Proxying;
  bool request_read = exchange_->request_complete || (proxying && request.framing == Framing::None);
  return !proxying || describe(cause).request_fault || !request_read || !request.keep_alive ||
         worker_.draining();
}

void DownstreamConnection::sendContinue() {
  evbuffer_add(out_, "HTTP/1.1 100 Continue\r\n\r\n", 25);
}

void DownstreamConnection::exchangeDone() {
  // A response that ends before its request does: the rest of the request
  // body cannot be skipped safely, so the connection ends with this response.
  if (!exchange_->request_complete) close_after_response_ = true;
  if (close_after_response_ || worker_.draining()) {
    phase_ = Phase::Closing;
    return;
  }
  served_one_ = true;
  exchange_->request_parser.nextMessage();
  exchange_->response_parser.nextMessage();
  exchange_->reset();
  phase_ = Phase::AwaitingRequest;
  timer_.setIn(bufferedBytes(in_) > 0 ? runtime_->config().timeouts.client_header
                                      : runtime_->config().timeouts.client_idle);
}

void DownstreamConnection::waitFor(std::chrono::milliseconds timeout) {
  timer_.setIn(timeout);
}

void DownstreamConnection::waitOver() {
  client_activity_ = worker_.clock().now();
  timer_.setIn(runtime_->config().timeouts.client_idle);
}

}  // namespace crest::proxy
