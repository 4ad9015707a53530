#pragma once
// The rise/fall state machine of one server's health, apart from any probe:
// `unhealthy_threshold` failures in a row take a healthy server down,
// `healthy_threshold` passes in a row bring a down server back. Servers start
// healthy so traffic flows before the first check. Not thread-safe: owned by
// the thread that runs the checks.

#include <cstdint>

namespace crest::health {

class HealthTracker {
 public:
  HealthTracker(uint32_t healthy_threshold, uint32_t unhealthy_threshold)
      : healthy_threshold_(healthy_threshold), unhealthy_threshold_(unhealthy_threshold) {}

  // Records one observation; true when it flipped the state.
  bool observe(bool pass);
  // Marks the server down at once (passive ejection); true when it flipped.
  bool forceDown();
  // A server never checked that starts down (a new address DNS gave): its
  // first passing check brings it up.
  void startDown() {
    healthy_ = false;
    streak_ = healthy_threshold_ > 0 ? healthy_threshold_ - 1 : 0;
  }

  bool healthy() const { return healthy_; }

 private:
  uint32_t healthy_threshold_;
  uint32_t unhealthy_threshold_;
  bool healthy_ = true;
  uint32_t streak_ = 0;  // consecutive observations against the current state
};

}  // namespace crest::health
