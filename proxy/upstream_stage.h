#pragma once
// The last stage: the route's pool (or its split's choice), a server from
// the balancer, the request sent on a kept-alive or new connection, retries
// on another server while nothing was sent, and the response streamed back
// to the client with the other stages' response hooks.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string_view>

#include "balancer/balancer.h"
#include "http/http_message.h"
#include "observe/metrics.h"
#include "proxy/local_answer.h"
#include "proxy/runtime.h"
#include "proxy/stage.h"
#include "proxy/upstream_connection.h"

namespace crest::proxy {

class Exchange;

class UpstreamStage {
 public:
  // Chooses the pool before the other stages run: a cache hit or a shed
  // request is counted under it.
  void choosePool(Exchange& exchange);
  // Sends the admitted request on: its head to a server, its body after.
  StageResult onRequest(Exchange& exchange);
  // Moves the request to the server and its response to the client, as far
  // as they can go; true when anything moved.
  bool drive(Exchange& exchange);
  // The connect or response timeout passed: false when the client is the slow one.
  bool onTimeout(Exchange& exchange);
  bool active() const { return connection_ != nullptr; }
  // The server switched to WebSocket: the exchange relays bytes both ways
  // until either side closes (then the other is closed once its bytes are
  // through) or none moves within timeouts.tunnel_idle.
  bool tunneling() const { return tunnel_; }
  uint64_t tunnelBytesFromClient() const { return request_bytes_sent_ - tunnel_sent_base_; }
  uint64_t tunnelBytesToClient() const { return tunnel_to_client_; }
  std::chrono::steady_clock::time_point tunnelOpenedAt() const { return tunnel_opened_; }
  // Lets go of the server's active count and the connection.
  void release();
  void reset();

  const PoolRuntime* pool() const { return pool_; }
  void forgetPool() { pool_ = nullptr; }
  // The server that answered, for the access log; null for local answers.
  const UpstreamServer* servedBy() const { return served_by_; }
  void forgetServer() { served_by_ = nullptr; }
  // How long the server took; a response cut short ends now.
  std::chrono::steady_clock::duration timeAt(std::chrono::steady_clock::time_point now) const {
    return time_.count() ? time_ : now - start_;
  }

 private:
  enum class Failure { Connect, Broken, Timeout, Invalid };

  const PoolRuntime* pickPool(Exchange& exchange) const;
  void writeRequestHead(Exchange& exchange);
  // Connects to the balancer's next choice, retrying while it may.
  void dispatch(Exchange& exchange);
  // The server's answer breaks HTTP: 502 when nothing was sent yet, else a close.
  void invalidResponse(Exchange& exchange, std::string_view why);
  void onResponseHead(Exchange& exchange);
  // A 101 to a WebSocket request: the head goes on and the tunnel opens.
  void startTunnel(Exchange& exchange);
  // Moves the server's bytes to the client while it has room; ends the
  // tunnel when a side is done.
  bool relayTunnel(Exchange& exchange);
  void endTunnel(Exchange& exchange, LocalCause cause);
  void onResponseComplete(Exchange& exchange);
  void onFailure(Exchange& exchange, Failure failure);
  void releaseServer();

  uint64_t split_key_ = 0;
  bool switched_pool_ = false;
  const PoolRuntime* pool_ = nullptr;
  UpstreamServer* server_ = nullptr;  // counted in its active_requests while set
  const UpstreamServer* served_by_ = nullptr;
  std::unique_ptr<UpstreamConnection> connection_;
  bool timer_started_ = false;
  uint64_t request_bytes_sent_ = 0;
  balancer::TriedSet tried_;
  uint32_t retries_left_ = 0;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::duration time_{};
  bool tunnel_ = false;
  uint64_t tunnel_sent_base_ = 0;  // request_bytes_sent_ when the tunnel opened
  uint64_t tunnel_to_client_ = 0;
  std::chrono::steady_clock::time_point tunnel_opened_;
  observe::ListenerCells* tunnel_cells_ = nullptr;  // counted in its tunnels_active while set
};

}  // namespace crest::proxy
