#include "proxy/mirror_stage.h"

#include <cstdio>

#include "http/header_rewrite.h"
#include "proxy/exchange.h"

namespace crest::proxy {

using namespace http;

void MirrorStage::onRequest(Exchange& exchange) {
  const auto& mirror = exchange.route->mirror;
  if (!mirror) return;
  ExchangeContext& context = exchange.context();
  if (!chance(context, mirror->percent)) return;
  const PoolRuntime& pool = *exchange.route_target->mirror_pool;
  const MessageHead& head = exchange.request();
  if (head.framing == Framing::ContentLength && head.content_length > mirror->max_body) {
    pool.metrics->mirror_skipped.add();
    return;
  }
  balancer::Server* picked =
      pool.balancer->pick(balancer::PickContext{exchange.clientAddress().hash}, {});
  if (picked == nullptr) {
    pool.metrics->mirror_error.add();
    return;
  }
  auto* server = static_cast<UpstreamServer*>(picked);
  const ClientInfo& client = exchange.clientInfo();
  ForwardInfo info{client.peer.ip, client.tls ? "https" : "http", exchange.request_id,
                   server->address};
  head_.assign(writeUpstreamRequestHead(head, exchange.target, info));
  head_.insert(head_.size() - 2, "X-Crest-Mirror: 1\r\n");
  body_.clear();
  framing_ = head.framing;
  if (framing_ != Framing::None) exchange.request_body.tap(&body_, mirror->max_body);
  server_ = server->shared_from_this();
  pool_ = &pool;
  chosen_ = true;
}

void MirrorStage::release(Exchange& exchange) {
  if (!chosen_) return;
  chosen_ = false;
  bool whole = framing_ == Framing::None ||
               (exchange.request_complete && !exchange.request_body.tapOverflowed());
  if (!whole) {
    pool_->metrics->mirror_skipped.add();
    server_.reset();
    return;
  }
  std::string request = std::move(head_);
  if (framing_ == Framing::Chunked && !body_.empty()) {
    char size[24];
    int n = std::snprintf(size, sizeof size, "%zx\r\n", body_.size());
    request.append(size, static_cast<size_t>(n)).append(body_).append("\r\n");
  } else {
    request.append(body_);
  }
  if (framing_ == Framing::Chunked) request.append("0\r\n\r\n");
  exchange.context().mirror(std::move(server_), pool_->config->timeouts, std::move(request),
                            pool_->metrics);
}

}  // namespace crest::proxy
