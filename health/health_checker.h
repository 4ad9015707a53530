#pragma once
// Runs the health of every server of the process, once (not once per worker):
// active HTTP checks on each server's interval, probes of different servers
// spread over the first second and then kept apart, and the re-admission of
// servers that passive ejection took out when they have no active check.
// The state it drives is one std::atomic<bool> per server, read by workers on
// every pick. Dispatcher-thread only.

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "health/dispatcher.h"
#include "health/health_tracker.h"
#include "health/prober.h"

namespace crest::health {

struct CheckedServer {
  std::string pool;
  std::string address;
  ProbeTarget probe;  // probe.check null: no active checks
  std::atomic<bool>* healthy = nullptr;
  std::shared_ptr<const void> owner;  // keeps `healthy` and `probe.check` alive
};

class HealthObserver {
 public:
  virtual ~HealthObserver() = default;
  virtual void onProbe(const CheckedServer& server, const ProbeResult& result) = 0;
  // The server's state flipped; `why` is what caused it ("status 500", "2 checks passed").
  virtual void onStateChange(const CheckedServer& server, bool healthy, const std::string& why) = 0;
};

struct PassiveRecovery {
  std::chrono::milliseconds sweep{500};  // how often ejected servers are looked at
  std::chrono::milliseconds first_backoff{2000};
  std::chrono::milliseconds max_backoff{30000};
  std::chrono::milliseconds stable{30000};  // healthy this long resets the back-off
};

class HealthChecker {
 public:
  HealthChecker(Dispatcher& dispatcher, Prober& prober, HealthObserver& observer,
                PassiveRecovery recovery = {});
  ~HealthChecker();

  // Replaces the servers to look after. Servers with the same pool and address
  // keep their tracker and back-off; new ones start healthy and are probed at once.
  void setServers(std::vector<CheckedServer> servers);

 private:
  struct Entry {
    Entry(CheckedServer s, HealthTracker t) : server(std::move(s)), tracker(t) {}
    CheckedServer server;
    HealthTracker tracker;
    Dispatcher::TimerId timer = 0;
    Clock::time_point last_start;
    bool probing = false;
    // Passive recovery of servers without active checks.
    bool ejected = false;
    Clock::time_point ejected_at;
    Clock::time_point readmitted_at;
    std::chrono::milliseconds backoff{0};
  };

  void scheduleProbe(const std::shared_ptr<Entry>& e, std::chrono::milliseconds delay);
  void runProbe(const std::shared_ptr<Entry>& e);
  void onResult(const std::shared_ptr<Entry>& e, const ProbeResult& result);
  void sweep();

  Dispatcher& dispatcher_;
  Prober& prober_;
  HealthObserver& observer_;
  PassiveRecovery recovery_;
  std::map<std::string, std::shared_ptr<Entry>> entries_;  // by "pool address"
  Dispatcher::TimerId sweep_timer_ = 0;
};

}  // namespace crest::health
