#pragma once
// What a health check asks of a server, and the answer. The prober only says
// pass or fail and why; what that means for the server's state is
// HealthTracker's business.

#include <sys/socket.h>

#include <functional>
#include <string>

#include "conf/config.h"

namespace crest::health {

struct ProbeTarget {
  sockaddr_storage address{};
  socklen_t address_length = 0;
  std::string host_header;  // the configured host, else the server address
  const conf::HealthCheck* check = nullptr;
};

struct ProbeResult {
  bool pass = false;
  std::string reason;  // "status 200", "status 500", "connect refused", "timeout 1s"
};

class Prober {
 public:
  virtual ~Prober() = default;
  // Starts one probe; `done` is called exactly once, later, on the same thread.
  virtual void probe(const ProbeTarget& target, std::function<void(ProbeResult)> done) = 0;
};

}  // namespace crest::health
