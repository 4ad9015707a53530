#pragma once
// The HTTP health probe: one GET with Connection: close per probe, on the
// event loop of the thread that runs the checks. Passes when the status code
// is in the check's expected_status.

#include <event2/event.h>

#include <unordered_set>

#include "health/prober.h"

namespace crest::health {

class HttpProbe;

class HttpProber : public Prober {
 public:
  explicit HttpProber(event_base* base) : base_(base) {}
  // Probes still in flight are dropped without calling back (shutdown), so
  // destroy the prober before its event_base.
  ~HttpProber() override;
  HttpProber(const HttpProber&) = delete;
  HttpProber& operator=(const HttpProber&) = delete;
  void probe(const ProbeTarget& target, std::function<void(ProbeResult)> done) override;

 private:
  event_base* base_;
  std::unordered_set<HttpProbe*> in_flight_;
};

// "HTTP/1.1 503 Service Unavailable" -> 503; 0 when it is not a status line.
int parseStatusLine(const std::string& line);

}  // namespace crest::health
