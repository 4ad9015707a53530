#include "server/health_reporter.h"

#include "proxy/upstream_health.h"

namespace crest::server {

void HealthReporter::onProbe(const health::CheckedServer& server,
                             const health::ProbeResult& result) {
  observe::ServerCells* cells = metrics_.serverCells(server.pool, server.address);
  (result.pass ? cells->checks_pass : cells->checks_fail).add();
}

void HealthReporter::onStateChange(const health::CheckedServer& server, bool healthy,
                                   const std::string& why) {
  proxy::logHealthChange(server.pool, server.address, healthy, why);
}

std::vector<health::CheckedServer> checkedServers(
    const std::shared_ptr<const proxy::Runtime>& runtime) {
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

}  // namespace crest::server
