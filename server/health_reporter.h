#pragma once
// Connects health/ to the proxy on the main thread: which servers the
// checker looks after, and what a check and a state change produce (a
// counter, one log line per edge).

#include <memory>
#include <vector>

#include "health/health_checker.h"
#include "observe/metrics.h"
#include "proxy/runtime.h"

namespace crest::server {

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
std::vector<health::CheckedServer> checkedServers(
    const std::shared_ptr<const proxy::Runtime>& runtime);

}  // namespace crest::server
