#include "proxy/mirror_copy.h"

#include "proxy/stage.h"

namespace crest::proxy {

using http::Http1Parser;

MirrorCopy::MirrorCopy(ExchangeContext& context, std::shared_ptr<UpstreamServer> server,
                       const conf::UpstreamTimeouts& timeouts, std::string request,
                       observe::PoolCells* cells, std::function<void(MirrorCopy*)> done)
    : context_(context),
      server_(std::move(server)),
      timeouts_(timeouts),
      request_(std::move(request)),
      cells_(cells),
      done_(std::move(done)),
      sink_(evbuffer_new()),
      body_(sink_, false) {}

MirrorCopy::~MirrorCopy() {
  connection_.reset();
  evbuffer_free(sink_);
}

void MirrorCopy::start() {
  int connect_errno = 0;
  connection_ = context_.connectTo(server_, timeouts_, false, connect_errno);
  if (!connection_) {
    finish(false);
    return;
  }
  connection_->attach(this);
  onUpstreamEvent();
}

void MirrorCopy::onUpstreamEvent() {
  if (connection_->state() == UpstreamConnection::State::Failed) return finish(false);
  if (connection_->state() == UpstreamConnection::State::Connecting) return;
  if (!timer_started_) {
    timer_started_ = true;
    connection_->expectResponseWithin(timeouts_.response);
  }
  // The whole request is in request_: flush's body buffer stays empty.
  if (!request_.empty() && !connection_->flush(request_, sink_)) return finish(false);
  while (true) {
    connection_->pullInput(64 * 1024, context_.readScratch());
    evbuffer* input = connection_->input();
    size_t before = evbuffer_get_length(input);
    Http1Parser::Event ev = parser_.parse(input, body_, 64 * 1024);
    evbuffer_drain(sink_, evbuffer_get_length(sink_));
    if (ev == Http1Parser::Event::Head) {
      if (parser_.head().status < 200) parser_.nextMessage();  // interim
      continue;
    }
    if (ev == Http1Parser::Event::Complete) return finish(true);
    if (ev == Http1Parser::Event::Error) return finish(false);
    bool ended = connection_->peerClosed() || connection_->broken();
    if (ended && evbuffer_get_length(input) == 0) {
      if (parser_.finishAtEof(body_) == Http1Parser::Event::Complete) return finish(true);
      return finish(false);
    }
    if (evbuffer_get_length(input) == before) return;
  }
}

void MirrorCopy::onUpstreamTimeout() {
  finish(false);
}

void MirrorCopy::finish(bool answered) {
  (answered ? cells_->mirror_sent : cells_->mirror_error).add();
  if (answered && connection_ && parser_.head().keep_alive && request_.empty() &&
      evbuffer_get_length(connection_->input()) == 0 && !connection_->peerClosed()) {
    connection_->stopTimer();
    context_.keepIdle(std::move(connection_), timeouts_.idle);
  }
  connection_.reset();
  done_(this);  // deletes this
}

}  // namespace crest::proxy
