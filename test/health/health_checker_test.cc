#include "health/health_checker.h"

#include <catch2/catch.hpp>
#include <deque>
#include <map>

#include "test/support/fake_dispatcher.h"

using namespace crest;
using namespace crest::health;
using namespace std::chrono_literals;
using crest::test::FakeDispatcher;

namespace {

// Answers each probe after `latency` with whatever the test set for the server.
class FakeProber : public Prober {
 public:
  explicit FakeProber(FakeDispatcher& d) : dispatcher_(d) {}
  void probe(const ProbeTarget& target, std::function<void(ProbeResult)> done) override {
    std::string host = target.host_header;
    starts.push_back({host, dispatcher_.now()});
    ++in_flight[host];
    max_in_flight = std::max(max_in_flight, in_flight[host]);
    dispatcher_.schedule(latency, [this, host, done] {
      --in_flight[host];
      done(answers.count(host) ? answers[host] : ProbeResult{true, "status 200"});
    });
  }
  std::map<std::string, ProbeResult> answers;
  std::chrono::milliseconds latency{10};
  std::vector<std::pair<std::string, Clock::time_point>> starts;
  std::map<std::string, int> in_flight;
  int max_in_flight = 0;

 private:
  FakeDispatcher& dispatcher_;
};

struct Change {
  std::string server;
  bool healthy;
  std::string why;
};

class RecordingObserver : public HealthObserver {
 public:
  void onProbe(const CheckedServer&, const ProbeResult& r) override {
    probes += r.pass ? "+" : "-";
  }
  void onStateChange(const CheckedServer& s, bool healthy, const std::string& why) override {
    changes.push_back({s.address, healthy, why});
  }
  std::string probes;
  std::vector<Change> changes;
};

struct Fixture {
  FakeDispatcher dispatcher;
  FakeProber prober{dispatcher};
  RecordingObserver observer;
  HealthChecker checker{dispatcher, prober, observer};
  conf::HealthCheck check;
  std::deque<std::atomic<bool>> flags;

  Fixture() {
    check.interval = 2s;
    check.timeout = 1s;
  }

  CheckedServer server(const std::string& address, bool checked = true) {
    flags.emplace_back(true);
    CheckedServer s;
    s.pool = "api";
    s.address = address;
    s.probe.host_header = address;
    s.probe.check = checked ? &check : nullptr;
    s.healthy = &flags.back();
    return s;
  }
};

}  // namespace

TEST_CASE("checker: first probes run at start, spread, then one per interval") {
  Fixture f;
  f.checker.setServers({f.server("a"), f.server("b"), f.server("c"), f.server("d")});
  f.dispatcher.advance(999ms);
  REQUIRE(f.prober.starts.size() == 4);
  CHECK(f.prober.starts[0].second - f.prober.starts[1].second == -250ms);
  CHECK(f.prober.starts[1].second - f.prober.starts[2].second == -250ms);
  f.dispatcher.advance(60s);
  // 60 simulated seconds at a 2 s interval: 30 or 31 probes each.
  std::map<std::string, int> per_server;
  for (auto& [host, t] : f.prober.starts) per_server[host]++;
  for (auto& [host, n] : per_server) CHECK((n == 30 || n == 31));
}

TEST_CASE("checker: a failing server goes down after unhealthy_threshold probes and comes back") {
  Fixture f;
  f.checker.setServers({f.server("a")});
  f.dispatcher.advance(100ms);
  f.prober.answers["a"] = {false, "status 500"};
  f.dispatcher.advance(4s);  // probes 2 and 3 fail
  CHECK(f.flags[0].load());
  f.dispatcher.advance(2s);  // probe 4: the third failure
  CHECK_FALSE(f.flags[0].load());
  REQUIRE(f.observer.changes.size() == 1);
  CHECK(f.observer.changes[0].why == "status 500");
  CHECK(f.observer.probes == "+---");
  f.prober.answers.erase("a");
  f.dispatcher.advance(2s);
  CHECK_FALSE(f.flags[0].load());
  f.dispatcher.advance(2s);
  CHECK(f.flags[0].load());
  REQUIRE(f.observer.changes.size() == 2);
  CHECK(f.observer.changes[1].healthy);
}

TEST_CASE("checker: a passively ejected server needs healthy_threshold passes") {
  Fixture f;
  f.checker.setServers({f.server("a")});
  f.dispatcher.advance(100ms);
  f.flags[0] = false;  // a worker saw "connection refused"
  f.dispatcher.advance(2s);
  CHECK_FALSE(f.flags[0].load());
  f.dispatcher.advance(2s);
  CHECK(f.flags[0].load());
}

TEST_CASE("checker: probes never overlap when a server is slower than the interval") {
  Fixture f;
  f.prober.latency = 3s;
  f.checker.setServers({f.server("a")});
  f.dispatcher.advance(29s);  // starts at 0, 3, ..., 27 s
  CHECK(f.prober.max_in_flight == 1);
  CHECK(f.prober.starts.size() == 10);
}

TEST_CASE("checker: without active checks an ejected server is retried after a growing back-off") {
  Fixture f;
  f.checker.setServers({f.server("a", false)});
  f.flags[0] = false;
  f.dispatcher.advance(2s);
  CHECK_FALSE(f.flags[0].load());
  f.dispatcher.advance(600ms);
  CHECK(f.flags[0].load());
  REQUIRE(f.observer.changes.size() == 1);
  CHECK(f.observer.changes[0].why == "retrying after 2000ms without active checks");
  f.flags[0] = false;  // refused again: now it waits 4 s
  f.dispatcher.advance(3s);
  CHECK_FALSE(f.flags[0].load());
  f.dispatcher.advance(2s);
  CHECK(f.flags[0].load());
  CHECK(f.prober.starts.empty());
}

TEST_CASE("checker: a reload keeps the state of servers that stay and drops the others") {
  Fixture f;
  f.prober.answers["a"] = {false, "status 503"};
  f.checker.setServers({f.server("a"), f.server("b")});
  f.dispatcher.advance(5s);
  CHECK_FALSE(f.flags[0].load());
  f.flags.emplace_back(false);  // the reloaded runtime reuses the Server: same flag
  CheckedServer again = f.server("a");
  again.healthy = &f.flags[0];
  f.checker.setServers({again, f.server("c")});
  f.prober.answers.erase("a");
  f.dispatcher.advance(2100ms);
  CHECK_FALSE(f.flags[0].load());  // one pass is not enough: the tracker carried over
  auto b_probes_before = std::count_if(f.prober.starts.begin(), f.prober.starts.end(),
                                       [](auto& s) { return s.first == "b"; });
  f.dispatcher.advance(10s);
  auto b_probes_after = std::count_if(f.prober.starts.begin(), f.prober.starts.end(),
                                      [](auto& s) { return s.first == "b"; });
  CHECK(b_probes_after == b_probes_before);
  CHECK(f.flags[0].load());
}
