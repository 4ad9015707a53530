#include "health/health_tracker.h"

namespace crest::health {

bool HealthTracker::observe(bool pass) {
  if (pass == healthy_) {
    streak_ = 0;
    return false;
  }
  ++streak_;
  if (streak_ < (healthy_ ? unhealthy_threshold_ : healthy_threshold_)) return false;
  healthy_ = !healthy_;
  streak_ = 0;
  return true;
}

bool HealthTracker::forceDown() {
  streak_ = 0;
  if (!healthy_) return false;
  healthy_ = false;
  return true;
}

}  // namespace crest::health
