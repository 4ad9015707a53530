#pragma once
// Every metric of SPEC.md, declared here. Workers count into cells: relaxed
// atomics that never take a lock, created once per label set on the main
// thread and stable for the life of the process, so counters survive reloads.
// The main thread turns cells and live server state into Prometheus families.

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace crest::observe {

#ifdef CREST_NO_METRICS
constexpr bool kCountMetrics = false;
#else
constexpr bool kCountMetrics = true;
#endif

struct CounterCell {
  std::atomic<uint64_t> value{0};
  void add(uint64_t n = 1) {
    if (kCountMetrics) value.fetch_add(n, std::memory_order_relaxed);
  }
};

struct GaugeCell {
  std::atomic<int64_t> value{0};
  void add(int64_t n) {
    if (kCountMetrics) value.fetch_add(n, std::memory_order_relaxed);
  }
};

// Request durations, 0.5 ms to 10 s.
struct HistogramCell {
  static constexpr std::array<double, 14> kBounds = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  std::array<std::atomic<uint64_t>, kBounds.size() + 1> buckets{};  // the last one is +Inf
  std::atomic<uint64_t> count{0};
  std::atomic<uint64_t> sum_micros{0};
  void observe(std::chrono::steady_clock::duration d);
};

// Status codes are counted by class only (1xx..5xx): label values stay bounded.
constexpr size_t kStatusClasses = 5;
inline size_t statusClass(int status) {
  return status >= 100 && status <= 599 ? status / 100 - 1 : 4;
}

// crest_http_requests_total and crest_http_request_duration_seconds of one listener and pool.
struct RequestCells {
  std::array<CounterCell, kStatusClasses> responses;
  HistogramCell duration;
};

// The protocol a request came in (crest_downstream_requests_total's protocol).
enum class ClientProtocol { Http10, Http11, Http2 };
constexpr size_t kClientProtocols = 3;
// Why crest sent an HTTP/2 client a GOAWAY (crest_http2_goaway_total's reason):
// abuse (ENHANCE_YOUR_CALM), a protocol error, or a graceful stop.
enum class GoawayReason { Calm, Protocol, Shutdown };
constexpr size_t kGoawayReasons = 3;

struct ListenerCells {
  // The listener's name: its connections keep no copy (Metrics never drops a cell).
  std::string listener;
  CounterCell connections_total;
  CounterCell connections_rejected;  // closed at accept: limits.max_connections reached
  GaugeCell connections_active;
  CounterCell tls_ok;
  CounterCell tls_error;
  CounterCell rate_limited;     // requests answered 429 by a route's rate limit
  CounterCell headers_dropped;  // request fields not forwarded: their names have `_`
  std::array<CounterCell, kClientProtocols> requests;  // by ClientProtocol
  std::array<CounterCell, kGoawayReasons> goaways;     // HTTP/2 GOAWAY frames sent, by GoawayReason
  GaugeCell tunnels_active;                            // WebSocket tunnels open
  CounterCell tunnels_total;
  CounterCell access_denied;           // requests a route's access lists refused (403)
  CounterCell refused_per_client;      // connections over limits.max_connections_per_client
  CounterCell refused_proxy_protocol;  // connections without a valid PROXY protocol header
  CounterCell faults_delay;            // requests a route's fault delayed
  CounterCell faults_abort;            // requests a route's fault answered itself
};

// Why a request was shed instead of reaching its pool (crest_shed_requests_total's reason).
enum class ShedReason { QueueFull, QueueTimeout, NoHealthy };
constexpr size_t kShedReasons = 3;

// Per pool, counted across workers.
struct PoolCells {
  CounterCell split_fallbacks;  // requests a split moved off this pool
  std::array<CounterCell, kShedReasons> shed;
  std::array<CounterCell, 2> lookups;  // DNS lookups of its `resolve` servers: ok, error
  // Copies of other routes' requests mirrored to this pool.
  CounterCell mirror_sent;     // sent and answered
  CounterCell mirror_skipped;  // chosen, but the body was over max_body or not read whole
  CounterCell mirror_error;    // no server, or the copy failed (connect, timeout, reset)
};

struct ServerCells {
  std::array<CounterCell, kStatusClasses> responses;
  CounterCell connect_errors;
  CounterCell checks_pass;
  CounterCell checks_fail;
};

// X-Cache of a cached route's response (crest_cache_requests_total's result).
enum class CacheResult { Hit, Miss, Stale, Bypass };
constexpr size_t kCacheResults = 4;

// What the running configuration holds, read at scrape time: which series
// exist now, and the gauges that are read rather than counted.
struct LiveServer {
  std::string address;  // as written in the configuration
  int64_t active_requests = 0;
  bool up = true;
};
struct LivePool {
  std::string name;
  size_t queue_depth = 0;
  bool limited = false;  // has max_active_requests: the slot gauges below apply
  size_t slots_in_use = 0;
  size_t reserved_slots_in_use = 0;
  std::vector<LiveServer> servers;
};
struct LiveState {
  std::vector<std::string> listeners;
  std::vector<LivePool> pools;
  uint64_t cache_bytes = 0;
};

class Metrics : public prometheus::Collectable {
 public:
  using LiveSource = std::function<LiveState()>;

  Metrics();

  // Cells for one label set, created on first use. Main thread only (runtime
  // builds); the returned pointers stay valid and are shared with workers.
  RequestCells* requestCells(const std::string& listener, const std::string& pool);
  ListenerCells* listenerCells(const std::string& listener);
  ServerCells* serverCells(const std::string& pool, const std::string& server);
  PoolCells* poolCells(const std::string& pool);
  // Responses of cached routes by CacheResult.
  std::array<CounterCell, kCacheResults>* cacheCells() { return &cache_results_; }
  // crest_cluster_calls_total: cluster-scope rate-limit decisions asked of Redis.
  struct ClusterCells {
    CounterCell ok;
    CounterCell error;    // Redis unreachable or failing: decided locally
    CounterCell timeout;  // no answer within cluster.timeout: decided locally
  };
  ClusterCells& clusterCells() { return cluster_calls_; }

  // Main-thread metrics of configuration loads.
  void countReload(bool success, uint64_t generation, double unix_time);

  void setLiveSource(LiveSource source) { live_ = std::move(source); }
  // Text exposition format 0.0.4. Main thread only.
  std::string render() const;

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  std::map<std::pair<std::string, std::string>, std::unique_ptr<RequestCells>> requests_;
  std::map<std::string, std::unique_ptr<ListenerCells>> listeners_;
  std::map<std::pair<std::string, std::string>, std::unique_ptr<ServerCells>> servers_;
  std::map<std::string, std::unique_ptr<PoolCells>> pools_;
  std::array<CounterCell, kCacheResults> cache_results_;
  ClusterCells cluster_calls_;
  LiveSource live_;

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Counter* reload_success_;
  prometheus::Counter* reload_failure_;
  prometheus::Gauge* generation_;
  prometheus::Gauge* last_success_;
};

}  // namespace crest::observe
