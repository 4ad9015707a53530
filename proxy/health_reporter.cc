#include "proxy/health_reporter.h"

#include "observe/log.h"

namespace crest::proxy {

using namespace observe;

void logHealthChange(const std::string& pool, const std::string& address, bool healthy,
                     const std::string& why) {
  std::string line = "health: pool " + pool + " server " + address + ": ";
  line += healthy ? "down -> healthy (" : "healthy -> down (";
  line += why + ")";
  if (healthy) {
    log::info(line);
  } else {
    log::warn(line);
  }
}

void HealthReporter::onProbe(const health::CheckedServer& server,
                             const health::ProbeResult& result) {
  ServerCells* cells = metrics_.serverCells(server.pool, server.address);
  (result.pass ? cells->checks_pass : cells->checks_fail).add();
}

void HealthReporter::onStateChange(const health::CheckedServer& server, bool healthy,
                                   const std::string& why) {
  logHealthChange(server.pool, server.address, healthy, why);
}

std::vector<health::CheckedServer> checkedServers(const std::shared_ptr<const Runtime>& runtime) {
  std::vector<health::CheckedServer> out;
  for (const auto& pool : runtime->pools()) {
    const auto& check = pool.config->health_check;
    for (const auto& server : pool.servers) {
      health::CheckedServer c;
      c.pool = pool.config->name;
      c.address = server->address;
      c.probe.address = server->socket_address.storage;
      c.probe.address_length = server->socket_address.length;
      c.probe.check = check ? &*check : nullptr;
      c.probe.host_header = check && !check->host.empty() ? check->host : server->address;
      c.healthy = &server->healthy;
      c.owner = runtime;
      out.push_back(std::move(c));
    }
  }
  return out;
}

void ejectServer(UpstreamServer& server, const std::string& why) {
  server.metrics->connect_errors.add();
  bool expected = true;
  if (server.healthy.compare_exchange_strong(expected, false)) {
    logHealthChange(server.pool, server.address, false, why + ", passive");
  }
}

}  // namespace crest::proxy
