#include "proxy/upstream_stage.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "http/header_rewrite.h"
#include "observe/log.h"
#include "proxy/exchange.h"
#include "proxy/request_key.h"
#include "proxy/upstream_health.h"

namespace crest::proxy {

using namespace http;
using std::chrono::milliseconds;

namespace {

bool idempotent(const std::string& method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "PUT" ||
         method == "DELETE" || method == "TRACE";
}

// Why a connect failed, for the health log: "connect refused", "connect timeout 2s".
std::string connectFailure(int err, milliseconds timeout) {
  if (err == 0) return "connect timeout " + conf::formatDuration(timeout);
  if (err == ECONNREFUSED) return "connect refused";
  return std::string("connect failed: ") + std::strerror(err);
}

}  // namespace

void UpstreamStage::choosePool(Exchange& exchange) {
  const RouteTarget& target = *exchange.route_target;
  if (target.split) {
    split_key_ = requestKeyHash(target.split->sticky, exchange.request(),
                                exchange.clientAddress().hash, exchange.context());
  }
  pool_ = pickPool(exchange);
  retries_left_ = pool_->config->retries;
}

const PoolRuntime* UpstreamStage::pickPool(Exchange& exchange) const {
  const RouteTarget& target = *exchange.route_target;
  if (!target.split) return target.pool;
  const SplitRuntime& split = *target.split;
  size_t chosen = split.weights.pick(split_key_);
  if (hasHealthyServer(*split.pools[chosen])) return split.pools[chosen];
  // The chosen pool (typically the canary) is down: its users go to the others.
  size_t fallback = split.weights.pickUsable(
      split_key_, [&](size_t i) { return hasHealthyServer(*split.pools[i]); });
  if (fallback == split.pools.size())
    return split.pools[chosen];  // none healthy: its 503 says which
  // Counted, not logged: under load a down canary would flood the log; its
  // servers' state changes are logged once by the health checks.
  split.pools[chosen]->metrics->split_fallbacks.add();
  return split.pools[fallback];
}

StageResult UpstreamStage::onRequest(Exchange& exchange) {
  const MessageHead& head = exchange.request();
  if (head.expect_continue && head.framing != Framing::None) exchange.client().sendContinue();
  writeRequestHead(exchange);
  exchange.request_body = BodyEncoder(exchange.request_out, head.framing == Framing::Chunked);
  exchange.mirror.onRequest(exchange);  // as the request leaves, before anything can answer it
  dispatch(exchange);
  return StageResult::Waiting;  // for the server
}

void UpstreamStage::writeRequestHead(Exchange& exchange) {
  const ClientInfo& client = exchange.clientInfo();
  const std::string& default_host =
      pool_->servers.empty() ? client.listener() : pool_->servers.front()->address;
  // X-Forwarded-For gets the connection's client appended, also when the
  // request named an earlier one through trusted proxies: the chain stays whole.
  ForwardInfo info{client.peer.ip, client.tls ? "https" : "http", exchange.request_id,
                   default_host};
  exchange.request_head = writeUpstreamRequestHead(exchange.request(), exchange.target, info);
}

void UpstreamStage::dispatch(Exchange& exchange) {
  while (true) {
    balancer::Server* picked =
        pool_->balancer->pick(balancer::PickContext{exchange.clientAddress().hash}, tried_);
    if (picked == nullptr && exchange.route_target->split && !switched_pool_) {
      // Every server of the split's chosen pool failed (and was ejected): the
      // request may still be served by another pool of the split, once.
      const PoolRuntime* other = pickPool(exchange);
      if (other != pool_) {
        pool_->metrics->split_fallbacks.add();
        switched_pool_ = true;
        pool_ = other;
        tried_ = balancer::TriedSet();
        retries_left_ = pool_->config->retries;
        continue;
      }
    }
    if (picked == nullptr) {
      if (tried_.size() == 0) {
        exchange.shed(observe::ShedReason::NoHealthy,
                      "no healthy server in pool \"" + pool_->config->name + "\"");
      } else {
        exchange.answer(LocalCause::ConnectFailed,
                        "no server of pool \"" + pool_->config->name + "\" could be reached");
      }
      return;
    }
    tried_.add(picked);
    auto* server = static_cast<UpstreamServer*>(picked);
    int connect_errno = 0;
    // A WebSocket handshake takes a connection of its own: if it succeeds,
    // the connection is the tunnel's and never returns to the pool.
    connection_ = exchange.context().connectTo(server->shared_from_this(), pool_->config->timeouts,
                                               exchange.request().upgrade_websocket, connect_errno);
    if (connection_) {
      server_ = server;
      server_->active_requests.fetch_add(1, std::memory_order_relaxed);
      start_ = exchange.context().now();
      connection_->attach(&exchange);
      connection_->countRequest();
      return;
    }
    ejectServer(*server, connectFailure(connect_errno, pool_->config->timeouts.connect));
    if (retries_left_ == 0) {
      exchange.answer(LocalCause::ConnectFailed,
                      "cannot connect to a server of pool \"" + pool_->config->name + "\"");
      return;
    }
    --retries_left_;
  }
}

bool UpstreamStage::drive(Exchange& exchange) {
  if (connection_->state() == UpstreamConnection::State::Failed) {
    onFailure(exchange, Failure::Connect);
    return true;
  }
  if (connection_->state() == UpstreamConnection::State::Connecting) return false;
  if (!timer_started_) {
    timer_started_ = true;
    connection_->expectResponseWithin(pool_->config->timeouts.response);
  }
  bool progress = false;
  size_t pending = exchange.request_head.size() + evbuffer_get_length(exchange.request_out);
  if (pending > 0) {
    if (!connection_->flush(exchange.request_head, exchange.request_out)) {
      if (tunnel_) {
        endTunnel(exchange, LocalCause::None);
      } else {
        onFailure(exchange, Failure::Broken);
      }
      return true;
    }
    size_t sent =
        pending - exchange.request_head.size() - evbuffer_get_length(exchange.request_out);
    request_bytes_sent_ += sent;
    progress = sent > 0;
    if (tunnel_ && progress) connection_->noteActivity();
  }
  if (tunnel_) return relayTunnel(exchange) || progress;
  Http1Parser& parser = exchange.response_parser;
  while (connection_) {
    size_t out_bytes = exchange.client().unsentBytes();
    if (out_bytes >= kWindowBytes) break;
    // A response head that came in one read is parsed where it was read.
    std::string_view fresh;
    connection_->pullInput(kWindowBytes, exchange.context().readScratch(),
                           parser.awaitingHead() ? &fresh : nullptr);
    evbuffer* input = connection_->input();
    size_t before = evbuffer_get_length(input) + fresh.size();
    Http1Parser::Event ev =
        parser.parse(fresh, input, exchange.response_body, kWindowBytes - out_bytes);
    size_t after = evbuffer_get_length(input);
    progress |= after != before;
    if (ev == Http1Parser::Event::NeedMore &&
        (connection_->peerClosed() || connection_->broken()) && after == 0) {
      if (!exchange.response_started) {
        onFailure(exchange, Failure::Broken);
        return true;
      }
      ev = parser.finishAtEof(exchange.response_body);
      if (ev == Http1Parser::Event::Error) {
        // Cut short: close before the response's framing ends, so the client
        // can tell it is incomplete.
        exchange.client().reset(LocalCause::UpstreamReset);
        return true;
      }
    }
    if (ev == Http1Parser::Event::Head) {
      int status = parser.head().status;
      if (status == 101) {
        // crest forwards only WebSocket's Upgrade, so any other switch of
        // protocols answers nothing it asked: what follows would be another
        // protocol's bytes.
        if (!exchange.request().upgrade_websocket ||
            !parser.head().hasToken(HeaderName::Upgrade, "websocket")) {
          invalidResponse(exchange,
                          "101 Switching Protocols to a request that did not ask to upgrade");
          return true;
        }
        startTunnel(exchange);
        // What came with the 101 is the tunnel's, and may be all there is
        // (the server's bytes and its FIN in one read): relayed now.
        relayTunnel(exchange);
        return true;
      }
      if (status < 200) {
        parser.nextMessage();  // 1xx: interim, not forwarded
      } else {
        onResponseHead(exchange);
      }
      progress = true;
      continue;
    }
    if (ev == Http1Parser::Event::Complete) {
      onResponseComplete(exchange);
      return true;
    }
    if (ev == Http1Parser::Event::Error) {
      invalidResponse(exchange, parser.errorReason());
      return true;
    }
    if (after == before) break;
  }
  return progress;
}

bool UpstreamStage::onTimeout(Exchange& exchange) {
  if (tunnel_) {
    endTunnel(exchange, LocalCause::TunnelIdle);
    return true;
  }
  if (exchange.client().unsentBytes() >= kWindowBytes) {
    // The client, not the server, is slow: the client's own timer governs.
    connection_->expectResponseWithin(pool_->config->timeouts.response);
    return false;
  }
  onFailure(exchange, connection_->connected() ? Failure::Timeout : Failure::Connect);
  return true;
}

void UpstreamStage::invalidResponse(Exchange& exchange, std::string_view why) {
  observe::log::warn("upstream: pool " + pool_->config->name + " server " + server_->address +
                     ": invalid response: " + std::string(why));
  if (exchange.response_started) {
    exchange.client().reset(LocalCause::UpstreamReset);
  } else {
    onFailure(exchange, Failure::Invalid);
  }
}

void UpstreamStage::onResponseHead(Exchange& exchange) {
  const MessageHead& response = exchange.response_parser.head();
  // A failing pool: an expired entry within its stale time answers instead.
  if (response.status >= 500 && exchange.cache.serveStale(exchange)) return;
  exchange.response_body = exchange.client().sendResponseHead(response, exchange.responseExtras());
  exchange.response_status = response.status;
  served_by_ = server_;
  server_->metrics->responses[observe::statusClass(response.status)].add();
  exchange.response_started = true;
  exchange.cache.onResponseHead(exchange, response);
}

void UpstreamStage::startTunnel(Exchange& exchange) {
  tunnel_ = true;
  tunnel_sent_base_ = request_bytes_sent_;
  tunnel_opened_ = exchange.context().now();
  // An open tunnel holds no slot of max_active_requests: the slots measure
  // requests a server works on, and a tunnel of hours would starve them
  // (docs/websocket.md). It stays in the server's active count, which
  // least_conn balances.
  exchange.admission.release();
  tunnel_cells_ = exchange.clientInfo().listener_metrics;
  tunnel_cells_->tunnels_active.add(1);
  tunnel_cells_->tunnels_total.add();
  onResponseHead(exchange);
  // The client's bytes are the tunnel's from now on, until it closes its side.
  exchange.request_complete = false;
  connection_->expectResponseWithin(exchange.runtime().config().timeouts.tunnel_idle);
}

bool UpstreamStage::relayTunnel(Exchange& exchange) {
  bool progress = false;
  evbuffer* input = connection_->input();
  while (true) {
    size_t out_bytes = exchange.client().unsentBytes();
    if (out_bytes >= kWindowBytes) break;
    connection_->pullInput(kWindowBytes, exchange.context().readScratch());
    size_t n = std::min(evbuffer_get_length(input), kWindowBytes - out_bytes);
    if (n == 0) break;
    exchange.response_body.move(input, n);
    tunnel_to_client_ += n;
    progress = true;
  }
  bool server_done =
      (connection_->peerClosed() || connection_->broken()) && evbuffer_get_length(input) == 0;
  bool client_done = exchange.request_complete && exchange.request_head.empty() &&
                     evbuffer_get_length(exchange.request_out) == 0;
  if (server_done || client_done) {
    endTunnel(exchange, LocalCause::None);
    return true;
  }
  return progress;
}

void UpstreamStage::endTunnel(Exchange& exchange, LocalCause cause) {
  time_ = exchange.context().now() - start_;
  if (cause != LocalCause::None) exchange.cause = cause;
  release();
  exchange.complete();
}

void UpstreamStage::onResponseComplete(Exchange& exchange) {
  const MessageHead& response = exchange.response_parser.head();
  time_ = exchange.context().now() - start_;
  bool reusable = response.keep_alive && exchange.request_complete &&
                  exchange.request_head.empty() && evbuffer_get_length(exchange.request_out) == 0 &&
                  evbuffer_get_length(connection_->input()) == 0 && !connection_->peerClosed() &&
                  !connection_->broken();
  releaseServer();
  exchange.admission.release();
  exchange.cache.onResponseComplete(exchange);
  connection_->stopTimer();
  if (reusable) {
    exchange.context().keepIdle(std::move(connection_), pool_->config->timeouts.idle);
  } else {
    connection_.reset();
  }
  exchange.complete();
}

void UpstreamStage::onFailure(Exchange& exchange, Failure failure) {
  bool was_reused = connection_ && connection_->reused() && connection_->connected() &&
                    evbuffer_get_length(connection_->input()) == 0;
  if (failure == Failure::Connect && server_ != nullptr) {
    ejectServer(*server_, connectFailure(connection_ ? connection_->connectError() : 0,
                                         pool_->config->timeouts.connect));
  }
  release();
  if (exchange.response_started) {
    exchange.client().reset(LocalCause::UpstreamReset);
    return;
  }
  const MessageHead& request = exchange.request();
  const std::string& pool = pool_->config->name;
  switch (failure) {
    case Failure::Connect:
      if (retries_left_ > 0 && request_bytes_sent_ == 0) {
        --retries_left_;
        dispatch(exchange);
        return;
      }
      exchange.answer(LocalCause::ConnectFailed,
                      "cannot connect to a server of pool \"" + pool + "\"");
      return;
    case Failure::Broken:
      // A kept-alive connection the server closed while we were reusing it:
      // the request never reached the server, so it goes out again on a fresh
      // connection (bodiless requests only: a streamed body is gone).
      if (was_reused && request.framing == Framing::None) {
        tried_ = balancer::TriedSet();
      } else if (retries_left_ > 0 && idempotent(request.method) &&
                 request.framing == Framing::None) {
        --retries_left_;
      } else {
        exchange.answer(
            LocalCause::UpstreamClosed,
            "the server of pool \"" + pool + "\" closed the connection without a response");
        return;
      }
      writeRequestHead(exchange);
      request_bytes_sent_ = 0;
      dispatch(exchange);
      return;
    case Failure::Timeout:
      exchange.answer(LocalCause::UpstreamTimeout,
                      "the server of pool \"" + pool + "\" did not answer within " +
                          conf::formatDuration(pool_->config->timeouts.response));
      return;
    case Failure::Invalid:
      exchange.answer(LocalCause::InvalidResponse,
                      "invalid response from the server of pool \"" + pool + "\"");
      return;
  }
}

void UpstreamStage::releaseServer() {
  if (server_ == nullptr) return;
  server_->active_requests.fetch_sub(1, std::memory_order_relaxed);
  server_ = nullptr;
}

void UpstreamStage::release() {
  releaseServer();
  connection_.reset();
  if (tunnel_cells_ != nullptr) std::exchange(tunnel_cells_, nullptr)->tunnels_active.add(-1);
}

void UpstreamStage::reset() {
  switched_pool_ = false;
  pool_ = nullptr;
  served_by_ = nullptr;
  timer_started_ = false;
  request_bytes_sent_ = 0;
  tried_ = balancer::TriedSet();
  time_ = {};
  tunnel_ = false;
  tunnel_sent_base_ = 0;
  tunnel_to_client_ = 0;
}

}  // namespace crest::proxy
