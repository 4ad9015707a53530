#include "proxy/upstream_health.h"

#include "observe/log.h"

namespace crest::proxy {

void logHealthChange(const std::string& pool, const std::string& address, bool healthy,
                     const std::string& why) {
  std::string line = "health: pool " + pool + " server " + address + ": ";
  line += healthy ? "down -> healthy (" : "healthy -> down (";
  line += why + ")";
  if (healthy) {
    observe::log::info(line);
  } else {
    observe::log::warn(line);
  }
}

void ejectServer(UpstreamServer& server, const std::string& why) {
  server.metrics->connect_errors.add();
  bool expected = true;
  if (server.healthy.compare_exchange_strong(expected, false)) {
    logHealthChange(server.pool, server.address, false, why + ", passive");
  }
}

}  // namespace crest::proxy
