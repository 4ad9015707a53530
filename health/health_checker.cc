#include "health/health_checker.h"

#include <algorithm>

namespace crest::health {

using std::chrono::milliseconds;

HealthChecker::HealthChecker(Dispatcher& dispatcher, Prober& prober, HealthObserver& observer,
                             PassiveRecovery recovery)
    : dispatcher_(dispatcher), prober_(prober), observer_(observer), recovery_(recovery) {
  sweep_timer_ = dispatcher_.schedule(recovery_.sweep, [this] { sweep(); });
}

HealthChecker::~HealthChecker() {
  dispatcher_.cancel(sweep_timer_);
  for (auto& [key, e] : entries_) dispatcher_.cancel(e->timer);
}

void HealthChecker::setServers(std::vector<CheckedServer> servers) {
  std::map<std::string, std::shared_ptr<Entry>> next;
  std::vector<std::shared_ptr<Entry>> fresh;
  for (auto& s : servers) {
    std::string key = s.pool + " " + s.address;
    auto old = entries_.find(key);
    const conf::HealthCheck* check = s.probe.check;
    uint32_t rise = check ? check->healthy_threshold : 1;
    uint32_t fall = check ? check->unhealthy_threshold : 1;
    if (old != entries_.end()) {
      // Same server: its state carries over; the check's settings may have changed.
      auto e = old->second;
      bool was_checked = e->server.probe.check != nullptr;
      bool healthy = e->tracker.healthy();
      e->server = std::move(s);
      e->tracker = HealthTracker(rise, fall);
      if (!healthy) e->tracker.forceDown();
      if (!was_checked && check) fresh.push_back(e);
      if (was_checked && !check) {
        dispatcher_.cancel(e->timer);
        e->timer = 0;
      }
      next.emplace(key, e);
      entries_.erase(old);
      continue;
    }
    auto e = std::make_shared<Entry>(std::move(s), HealthTracker(rise, fall));
    if (check && !e->server.healthy->load()) e->tracker.startDown();
    e->backoff = recovery_.first_backoff;
    if (check) fresh.push_back(e);
    next.emplace(key, e);
  }
  for (auto& [key, e] : entries_) dispatcher_.cancel(e->timer);  // removed servers
  entries_ = std::move(next);
  // New checks start at once but spread over the first second (or the
  // interval, if shorter), so a large pool is not probed in one burst.
  for (size_t i = 0; i < fresh.size(); ++i) {
    milliseconds window =
        std::min<milliseconds>(fresh[i]->server.probe.check->interval, milliseconds(1000));
    scheduleProbe(fresh[i], window * static_cast<int64_t>(i) / static_cast<int64_t>(fresh.size()));
  }
}

void HealthChecker::scheduleProbe(const std::shared_ptr<Entry>& e, milliseconds delay) {
  std::weak_ptr<Entry> weak = e;
  e->timer = dispatcher_.schedule(delay, [this, weak] {
    if (auto entry = weak.lock()) runProbe(entry);
  });
}

void HealthChecker::runProbe(const std::shared_ptr<Entry>& e) {
  e->timer = 0;
  if (e->server.probe.check == nullptr) return;
  e->probing = true;
  e->last_start = dispatcher_.now();
  std::weak_ptr<Entry> weak = e;
  prober_.probe(e->server.probe, [this, weak](ProbeResult result) {
    if (auto entry = weak.lock()) onResult(entry, result);
  });
}

void HealthChecker::onResult(const std::shared_ptr<Entry>& e, const ProbeResult& result) {
  e->probing = false;
  if (entries_.count(e->server.pool + " " + e->server.address) == 0) return;  // removed meanwhile
  observer_.onProbe(e->server, result);
  // A worker may have ejected the server since the last probe (connection
  // refused): from then on it needs healthy_threshold passes like any other.
  if (!e->server.healthy->load() && e->tracker.healthy()) e->tracker.forceDown();
  if (e->tracker.observe(result.pass)) {
    e->server.healthy->store(e->tracker.healthy());
    observer_.onStateChange(e->server, e->tracker.healthy(), result.reason);
  }
  const conf::HealthCheck* check = e->server.probe.check;
  if (check == nullptr) return;
  // Next probe one interval after this one started; never two at once.
  auto elapsed = std::chrono::duration_cast<milliseconds>(dispatcher_.now() - e->last_start);
  scheduleProbe(e, std::max(milliseconds(0), check->interval - elapsed));
}

void HealthChecker::sweep() {
  const auto now = dispatcher_.now();
  for (auto& [key, e] : entries_) {
    if (e->server.probe.check != nullptr) continue;  // active checks bring it back
    bool healthy = e->server.healthy->load();
    if (!healthy && !e->ejected) {
      e->ejected = true;
      e->ejected_at = now;
    } else if (!healthy && now - e->ejected_at >= e->backoff) {
      // Let traffic try it again; if it still refuses, the next ejection waits twice as long.
      e->ejected = false;
      e->readmitted_at = now;
      e->server.healthy->store(true);
      observer_.onStateChange(
          e->server, true,
          "retrying after " + std::to_string(e->backoff.count()) + "ms without active checks");
      e->backoff = std::min(e->backoff * 2, recovery_.max_backoff);
    } else if (healthy && e->backoff > recovery_.first_backoff &&
               now - e->readmitted_at >= recovery_.stable) {
      e->backoff = recovery_.first_backoff;
    }
  }
  sweep_timer_ = dispatcher_.schedule(recovery_.sweep, [this] { sweep(); });
}

}  // namespace crest::health
