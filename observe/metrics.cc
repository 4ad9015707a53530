#include "observe/metrics.h"

#include <prometheus/text_serializer.h>

#include <algorithm>

namespace crest::observe {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

constexpr const char* kClassNames[kStatusClasses] = {"1xx", "2xx", "3xx", "4xx", "5xx"};

MetricFamily family(const char* name, const char* help, MetricType type) {
  MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  return f;
}

ClientMetric sample(std::vector<ClientMetric::Label> labels, double value, MetricType type) {
  ClientMetric m;
  m.label = std::move(labels);
  if (type == MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  return m;
}

// One counter sample per (value, cell): labelled `fixed` (a name and value,
// or none) plus `name`=value.
void addCounters(MetricFamily& family, std::pair<std::string, std::string> fixed, const char* name,
                 std::initializer_list<std::pair<const char*, const CounterCell*>> cells) {
  for (const auto& [value, cell] : cells) {
    std::vector<ClientMetric::Label> labels;
    if (!fixed.first.empty()) labels.push_back({fixed.first, fixed.second});
    labels.push_back({name, value});
    family.metric.push_back(sample(std::move(labels),
                                   static_cast<double>(cell->value.load(std::memory_order_relaxed)),
                                   MetricType::Counter));
  }
}

// Whether any of the cells has counted something: the series of a listener,
// pool or server a reload removed are exported only then.
bool anyCounted(const CounterCell& cell) {
  return cell.value.load(std::memory_order_relaxed) != 0;
}
bool anyCounted(const GaugeCell& cell) {
  return cell.value.load(std::memory_order_relaxed) != 0;
}
template <size_t N>
bool anyCounted(const std::array<CounterCell, N>& cells) {
  return std::any_of(cells.begin(), cells.end(),
                     [](const CounterCell& c) { return anyCounted(c); });
}
template <typename First, typename Second, typename... Rest>
bool anyCounted(const First& first, const Second& second, const Rest&... rest) {
  return anyCounted(first) || anyCounted(second, rest...);
}

double load(const std::atomic<uint64_t>& v) {
  return static_cast<double>(v.load(std::memory_order_relaxed));
}

}  // namespace

void HistogramCell::observe(std::chrono::steady_clock::duration d) {
  if (!kCountMetrics) return;
  double seconds = std::chrono::duration<double>(d).count();
  size_t i = 0;
  while (i < kBounds.size() && seconds > kBounds[i]) ++i;
  buckets[i].fetch_add(1, std::memory_order_relaxed);
  count.fetch_add(1, std::memory_order_relaxed);
  sum_micros.fetch_add(
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(d).count()),
      std::memory_order_relaxed);
}

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {
  auto& reloads = prometheus::BuildCounter()
                      .Name("crest_config_reloads_total")
                      .Help("Configuration reloads by result")
                      .Register(*registry_);
  reload_success_ = &reloads.Add({{"result", "success"}});
  reload_failure_ = &reloads.Add({{"result", "failure"}});
  generation_ = &prometheus::BuildGauge()
                     .Name("crest_config_generation")
                     .Help("Generation of the configuration being served (1 at start)")
                     .Register(*registry_)
                     .Add({});
  last_success_ = &prometheus::BuildGauge()
                       .Name("crest_config_last_reload_success_timestamp_seconds")
                       .Help("Unix time of the last successful configuration load")
                       .Register(*registry_)
                       .Add({});
}

namespace {

// The cell a map holds for `key`, made on first use; its address never changes.
template <typename Map>
auto* cellFor(Map& map, const typename Map::key_type& key) {
  auto& cell = map[key];
  if (!cell) cell = std::make_unique<typename Map::mapped_type::element_type>();
  return cell.get();
}

}  // namespace

RequestCells* Metrics::requestCells(const std::string& listener, const std::string& pool) {
  return cellFor(requests_, {listener, pool});
}

ListenerCells* Metrics::listenerCells(const std::string& listener) {
  ListenerCells* cells = cellFor(listeners_, listener);
  // Named when made, before any worker reads it.
  if (cells->listener.empty()) cells->listener = listener;
  return cells;
}

ServerCells* Metrics::serverCells(const std::string& pool, const std::string& server) {
  return cellFor(servers_, {pool, server});
}

PoolCells* Metrics::poolCells(const std::string& pool) {
  return cellFor(pools_, pool);
}

void Metrics::countReload(bool success, uint64_t generation, double unix_time) {
  if (success) {
    reload_success_->Increment();
    generation_->Set(static_cast<double>(generation));
    last_success_->Set(unix_time);
  } else {
    reload_failure_->Increment();
  }
}

std::vector<MetricFamily> Metrics::Collect() const {
  const LiveState live = live_ ? live_() : LiveState{};
  // Series of the running configuration are exported from the start, at 0,
  // so that rate() sees their first requests; those of listeners, pools and
  // servers a reload removed only while they hold counts.
  auto poolOf = [&live](const std::string& pool) -> const LivePool* {
    for (const auto& p : live.pools) {
      if (p.name == pool) return &p;
    }
    return nullptr;
  };
  auto currentListener = [&live](const std::string& listener) {
    return std::find(live.listeners.begin(), live.listeners.end(), listener) !=
           live.listeners.end();
  };
  auto currentRequests = [&](const std::string& listener, const std::string& pool) {
    return currentListener(listener) && (pool.empty() || poolOf(pool) != nullptr);
  };
  auto currentServer = [&](const std::string& pool, const std::string& server) {
    const LivePool* p = poolOf(pool);
    return p != nullptr && std::any_of(p->servers.begin(), p->servers.end(),
                                       [&](const LiveServer& s) { return s.address == server; });
  };
  auto requests =
      family("crest_http_requests_total", "Requests answered, by listener, pool and status class",
             MetricType::Counter);
  auto duration =
      family("crest_http_request_duration_seconds",
             "Time from the request head to the end of the response", MetricType::Histogram);
  for (const auto& [key, cells] : requests_) {
    const auto& [listener, pool] = key;
    if (!currentRequests(listener, pool) && !anyCounted(cells->responses)) continue;
    for (size_t c = 0; c < kStatusClasses; ++c) {
      uint64_t n = cells->responses[c].value.load(std::memory_order_relaxed);
      requests.metric.push_back(
          sample({{"listener", listener}, {"pool", pool}, {"code", kClassNames[c]}},
                 static_cast<double>(n), MetricType::Counter));
    }
    ClientMetric h;
    h.label = {{"listener", listener}, {"pool", pool}};
    uint64_t cumulative = 0;
    for (size_t i = 0; i < HistogramCell::kBounds.size(); ++i) {
      cumulative += cells->duration.buckets[i].load(std::memory_order_relaxed);
      h.histogram.bucket.push_back({cumulative, HistogramCell::kBounds[i]});
    }
    cumulative += cells->duration.buckets.back().load(std::memory_order_relaxed);
    h.histogram.bucket.push_back({cumulative, std::numeric_limits<double>::infinity()});
    h.histogram.sample_count = cumulative;
    h.histogram.sample_sum = load(cells->duration.sum_micros) / 1e6;
    duration.metric.push_back(std::move(h));
  }

  auto upstream = family("crest_upstream_requests_total", "Responses from servers, by status class",
                         MetricType::Counter);
  auto connect_errors = family("crest_upstream_connect_errors_total",
                               "Failed connections to servers", MetricType::Counter);
  auto checks =
      family("crest_health_checks_total", "Active health checks by result", MetricType::Counter);
  for (const auto& [key, cells] : servers_) {
    const auto& [pool, server] = key;
    if (!currentServer(pool, server) && !anyCounted(cells->responses, cells->connect_errors,
                                                    cells->checks_pass, cells->checks_fail))
      continue;
    for (size_t c = 0; c < kStatusClasses; ++c) {
      uint64_t n = cells->responses[c].value.load(std::memory_order_relaxed);
      upstream.metric.push_back(
          sample({{"pool", pool}, {"server", server}, {"code", kClassNames[c]}},
                 static_cast<double>(n), MetricType::Counter));
    }
    connect_errors.metric.push_back(sample({{"pool", pool}, {"server", server}},
                                           load(cells->connect_errors.value), MetricType::Counter));
    checks.metric.push_back(sample({{"pool", pool}, {"server", server}, {"result", "pass"}},
                                   load(cells->checks_pass.value), MetricType::Counter));
    checks.metric.push_back(sample({{"pool", pool}, {"server", server}, {"result", "fail"}},
                                   load(cells->checks_fail.value), MetricType::Counter));
  }

  auto queue_depth = family("crest_queue_depth",
                            "Requests waiting for a free slot of the pool (max_active_requests)",
                            MetricType::Gauge);
  auto active = family("crest_upstream_active_requests",
                       "Requests in flight to each server, all workers", MetricType::Gauge);
  auto up = family("crest_upstream_server_up",
                   "1 while the server receives traffic, 0 while it is down", MetricType::Gauge);
  auto cache_requests = family("crest_cache_requests_total",
                               "Responses of cached routes by X-Cache", MetricType::Counter);
  constexpr const char* kCacheNames[kCacheResults] = {"hit", "miss", "stale", "bypass"};
  for (size_t r = 0; r < kCacheResults; ++r) {
    cache_requests.metric.push_back(
        sample({{"result", kCacheNames[r]}}, load(cache_results_[r].value), MetricType::Counter));
  }
  auto cache_bytes =
      family("crest_cache_bytes", "Bytes held by the response cache (headers and bodies)",
             MetricType::Gauge);
  auto slots = family("crest_pool_slots_in_use",
                      "Slots of the pool's max_active_requests held by requests, all workers",
                      MetricType::Gauge);
  auto reserved_slots = family(
      "crest_pool_reserved_slots_in_use",
      "Slots of the pool's queue.reserved_high held by high-priority requests", MetricType::Gauge);
  for (const auto& pool : live.pools) {
    queue_depth.metric.push_back(
        sample({{"pool", pool.name}}, static_cast<double>(pool.queue_depth), MetricType::Gauge));
    if (pool.limited) {
      slots.metric.push_back(
          sample({{"pool", pool.name}}, static_cast<double>(pool.slots_in_use), MetricType::Gauge));
      reserved_slots.metric.push_back(sample({{"pool", pool.name}},
                                             static_cast<double>(pool.reserved_slots_in_use),
                                             MetricType::Gauge));
    }
    for (const auto& s : pool.servers) {
      std::vector<ClientMetric::Label> labels = {{"pool", pool.name}, {"server", s.address}};
      active.metric.push_back(
          sample(labels, static_cast<double>(s.active_requests), MetricType::Gauge));
      up.metric.push_back(sample(labels, s.up ? 1 : 0, MetricType::Gauge));
    }
  }

  auto conns_active =
      family("crest_downstream_connections_active", "Open client connections", MetricType::Gauge);
  auto conns_total = family("crest_downstream_connections_total", "Accepted client connections",
                            MetricType::Counter);
  auto fallbacks =
      family("crest_split_fallbacks_total",
             "Requests a split sent to another pool because this one had no healthy server",
             MetricType::Counter);
  auto shed = family("crest_shed_requests_total",
                     "Requests answered with the fallback or 503 instead of reaching the pool",
                     MetricType::Counter);
  constexpr const char* kShedNames[kShedReasons] = {"queue_full", "queue_timeout", "no_healthy"};
  auto lookups = family("crest_resolver_lookups_total",
                        "DNS lookups of the pool's servers with resolve: true, by result",
                        MetricType::Counter);
  auto mirrors = family("crest_mirror_requests_total",
                        "Copies of requests mirrored to the pool, by result", MetricType::Counter);
  auto pool_servers =
      family("crest_pool_servers", "Servers in the pool now (resolved ones each counted)",
             MetricType::Gauge);
  for (const auto& [pool, cells] : pools_) {
    if (poolOf(pool) == nullptr && !anyCounted(cells->split_fallbacks, cells->shed)) continue;
    addCounters(mirrors, {"pool", pool}, "result",
                {{"sent", &cells->mirror_sent},
                 {"skipped", &cells->mirror_skipped},
                 {"error", &cells->mirror_error}});
    addCounters(lookups, {"pool", pool}, "result",
                {{"ok", &cells->lookups[0]}, {"error", &cells->lookups[1]}});
    if (const LivePool* live_pool = poolOf(pool)) {
      pool_servers.metric.push_back(sample(
          {{"pool", pool}}, static_cast<double>(live_pool->servers.size()), MetricType::Gauge));
    }
    fallbacks.metric.push_back(
        sample({{"pool", pool}}, load(cells->split_fallbacks.value), MetricType::Counter));
    for (size_t r = 0; r < kShedReasons; ++r) {
      shed.metric.push_back(sample({{"pool", pool}, {"reason", kShedNames[r]}},
                                   load(cells->shed[r].value), MetricType::Counter));
    }
  }
  auto rejected =
      family("crest_downstream_connections_rejected_total",
             "Client connections closed at accept because limits.max_connections was reached",
             MetricType::Counter);
  auto tls = family("crest_tls_handshakes_total", "TLS handshakes by result", MetricType::Counter);
  auto rate_limited =
      family("crest_rate_limited_total", "Requests refused with 429 by a route's rate limit",
             MetricType::Counter);
  auto headers_dropped = family("crest_request_headers_dropped_total",
                                "Request header fields not forwarded because their names contain _",
                                MetricType::Counter);
  auto requests_by_protocol =
      family("crest_downstream_requests_total", "Client requests by listener and protocol",
             MetricType::Counter);
  auto goaways = family("crest_http2_goaway_total",
                        "GOAWAY frames sent to HTTP/2 clients, by reason", MetricType::Counter);
  auto access_denied =
      family("crest_access_denied_total", "Requests refused with 403 by a route's access lists",
             MetricType::Counter);
  auto faults =
      family("crest_faults_total", "Requests a route's fault delayed or aborted on purpose",
             MetricType::Counter);
  auto refused = family("crest_connections_refused_total",
                        "Client connections closed at once, by reason", MetricType::Counter);
  auto tunnels_active = family("crest_tunnels_active", "WebSocket tunnels open", MetricType::Gauge);
  auto tunnels_total =
      family("crest_tunnels_total", "WebSocket tunnels opened", MetricType::Counter);
  static constexpr const char* kProtocols[kClientProtocols] = {"http/1.0", "http/1.1", "h2"};
  static constexpr const char* kGoaways[kGoawayReasons] = {"calm", "protocol", "shutdown"};
  for (const auto& [listener, cells] : listeners_) {
    if (!currentListener(listener) &&
        !anyCounted(cells->connections_total, cells->connections_active, cells->tls_ok,
                    cells->tls_error))
      continue;
    headers_dropped.metric.push_back(
        sample({{"listener", listener}}, load(cells->headers_dropped.value), MetricType::Counter));
    conns_active.metric.push_back(
        sample({{"listener", listener}},
               static_cast<double>(cells->connections_active.value.load()), MetricType::Gauge));
    conns_total.metric.push_back(sample({{"listener", listener}},
                                        load(cells->connections_total.value), MetricType::Counter));
    rejected.metric.push_back(sample({{"listener", listener}},
                                     load(cells->connections_rejected.value), MetricType::Counter));
    rate_limited.metric.push_back(
        sample({{"listener", listener}}, load(cells->rate_limited.value), MetricType::Counter));
    tls.metric.push_back(sample({{"listener", listener}, {"result", "ok"}},
                                load(cells->tls_ok.value), MetricType::Counter));
    tls.metric.push_back(sample({{"listener", listener}, {"result", "error"}},
                                load(cells->tls_error.value), MetricType::Counter));
    for (size_t p = 0; p < kClientProtocols; ++p) {
      requests_by_protocol.metric.push_back(
          sample({{"listener", listener}, {"protocol", kProtocols[p]}},
                 load(cells->requests[p].value), MetricType::Counter));
    }
    for (size_t g = 0; g < kGoawayReasons; ++g) {
      goaways.metric.push_back(sample({{"listener", listener}, {"reason", kGoaways[g]}},
                                      load(cells->goaways[g].value), MetricType::Counter));
    }
    tunnels_active.metric.push_back(sample({{"listener", listener}},
                                           static_cast<double>(cells->tunnels_active.value.load()),
                                           MetricType::Gauge));
    tunnels_total.metric.push_back(
        sample({{"listener", listener}}, load(cells->tunnels_total.value), MetricType::Counter));
    access_denied.metric.push_back(
        sample({{"listener", listener}}, load(cells->access_denied.value), MetricType::Counter));
    addCounters(faults, {"listener", listener}, "kind",
                {{"delay", &cells->faults_delay}, {"abort", &cells->faults_abort}});
    addCounters(refused, {"listener", listener}, "reason",
                {{"per_client", &cells->refused_per_client},
                 {"max_connections", &cells->connections_rejected},
                 {"proxy_protocol", &cells->refused_proxy_protocol}});
  }

  std::vector<MetricFamily> out = {requests,
                                   duration,
                                   upstream,
                                   connect_errors,
                                   active,
                                   up,
                                   checks,
                                   conns_active,
                                   conns_total,
                                   rejected,
                                   tls,
                                   fallbacks,
                                   rate_limited,
                                   shed,
                                   queue_depth,
                                   headers_dropped,
                                   slots,
                                   reserved_slots,
                                   requests_by_protocol,
                                   goaways,
                                   tunnels_active,
                                   tunnels_total,
                                   access_denied,
                                   faults,
                                   refused,
                                   lookups,
                                   mirrors,
                                   pool_servers};
  cache_bytes.metric.push_back(
      sample({}, static_cast<double>(live.cache_bytes), MetricType::Gauge));
  auto cluster_calls =
      family("crest_cluster_calls_total",
             "Cluster-scope rate-limit decisions asked of Redis, by result", MetricType::Counter);
  addCounters(cluster_calls, {}, "result",
              {{"ok", &cluster_calls_.ok},
               {"error", &cluster_calls_.error},
               {"timeout", &cluster_calls_.timeout}});
  out.push_back(std::move(cluster_calls));
  out.push_back(std::move(cache_requests));
  out.push_back(std::move(cache_bytes));
  for (auto& f : registry_->Collect()) out.push_back(std::move(f));
  return out;
}

std::string Metrics::render() const {
  return prometheus::TextSerializer().Serialize(Collect());
}

}  // namespace crest::observe
