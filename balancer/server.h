#pragma once
// One upstream server as balancing sees it. A Server is shared by every worker
// and outlives configuration reloads while its pool and address stay, so the
// fields that change while serving are atomics and nothing else is mutable.

#include <atomic>
#include <cstdint>
#include <string>

namespace crest::balancer {

struct Server {
  explicit Server(std::string addr) : address(std::move(addr)) {}
  virtual ~Server() = default;

  const std::string address;  // exactly as written in the configuration

  // Requests assigned to this server and not yet finished, across all workers.
  std::atomic<int64_t> active_requests{0};
  // Read by every worker on every pick; written by health checks and passive ejection.
  std::atomic<bool> healthy{true};
};

// A server with the weight one configuration gives it (weights live here, not
// on Server, because a reload may change them while old requests still run).
struct Member {
  Server* server = nullptr;
  uint32_t weight = 1;
};

}  // namespace crest::balancer
