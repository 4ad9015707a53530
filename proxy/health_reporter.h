#pragma once
// Connects health/ to the proxy: which servers the checker looks after, and
// what a state change produces (one log line per edge). Main thread, except
// ejectServer, which any worker calls.

#include <vector>

#include "health/health_checker.h"
#include "proxy/runtime.h"

namespace crest::proxy {

class HealthReporter : public health::HealthObserver {
 public:
  explicit HealthReporter(observe::Metrics& metrics) : metrics_(metrics) {}
  void onProbe(const health::CheckedServer& server, const health::ProbeResult& result) override;
  void onStateChange(const health::CheckedServer& server, bool healthy,
                     const std::string& why) override;

 private:
  observe::Metrics& metrics_;
};

// Every server of `runtime`, with its pool's check if it has one.
std::vector<health::CheckedServer> checkedServers(const std::shared_ptr<const Runtime>& runtime);

// Passive ejection: takes a server that refused a connection out of
// balancing at once, and counts the connect error. Logs only when this call
// flipped the state.
void ejectServer(UpstreamServer& server, const std::string& why);

void logHealthChange(const std::string& pool, const std::string& address, bool healthy,
                     const std::string& why);

}  // namespace crest::proxy
