#pragma once
// Everything the workers need to serve one configuration: pools with their
// servers and balancers, listeners with their routers. Built by the main
// thread once per load and never mutated; a request keeps the Runtime it
// started with, so a reload never shows it a half-applied change.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "balancer/balancer.h"
#include "balancer/weighted_split.h"
#include "cache/response_cache.h"
#include "conf/config.h"
#include "conf/yaml_reader.h"
#include "io/socket_io.h"
#include "limits/admission_queue.h"
#include "limits/rate_limiter.h"
#include "observe/metrics.h"
#include "proxy/cluster_client.h"
#include "proxy/router.h"
#include "tls/tls_context.h"

namespace crest::proxy {

// A server plus where to connect to it. Outlives reloads while its pool and
// address stay (health state and counters carry over).
struct UpstreamServer : balancer::Server, std::enable_shared_from_this<UpstreamServer> {
  UpstreamServer(std::string pool_name, std::string address, io::SocketAddress sockaddr,
                 observe::ServerCells* cells)
      : Server(std::move(address)),
        pool(std::move(pool_name)),
        socket_address(sockaddr),
        metrics(cells) {}
  const std::string pool;
  const io::SocketAddress socket_address;
  observe::ServerCells* const metrics;
};

struct PoolRuntime {
  const conf::Pool* config = nullptr;
  observe::PoolCells* metrics = nullptr;
  size_t index = 0;                                      // position in Runtime::pools()
  std::vector<std::shared_ptr<UpstreamServer>> servers;  // in configuration order
  std::unique_ptr<balancer::Balancer> balancer;
  // Null without max_active_requests. Shared by all workers and kept across
  // reloads while the pool's name and limits stay, so slots in use stay counted.
  std::shared_ptr<limits::AdmissionQueue> admission;
};

// A route's weighted choice of pool (canary traffic).
struct SplitRuntime {
  std::vector<const PoolRuntime*> pools;  // in the order of the configuration
  balancer::WeightedSplit weights;
  conf::RequestKey sticky;
};

// Where a route sends requests: one pool, or a split over several; and
// what guards it.
struct RouteTarget {
  const PoolRuntime* pool = nullptr;
  std::unique_ptr<SplitRuntime> split;
  // Null without rate_limit. Kept across reloads while the route's position
  // and limit stay, so a reload does not hand every client a full bucket.
  std::shared_ptr<limits::RateLimiter> rate_limiter;
  limits::Priority priority = limits::Priority::Normal;
  const PoolRuntime* mirror_pool = nullptr;  // the route's mirror's
};

struct ListenerRuntime {
  const conf::Listener* config = nullptr;
  std::shared_ptr<const tls::ServerTls> tls;  // null for plain HTTP
  Router router;
  std::vector<RouteTarget> routes;  // parallel to config->routes
  // Request counters of this listener by pool index; the last entry is for
  // requests that reached no pool (pool="").
  std::vector<observe::RequestCells*> request_cells;
};

// The addresses DNS gave servers with `resolve: true`, by
// discoveredKey(pool, server name): each is a server of the pool.
using DiscoveredAddresses = std::map<std::string, std::vector<io::SocketAddress>>;
inline std::string discoveredKey(const std::string& pool, const std::string& server) {
  return pool + " " + server;
}

// Whether any server of `pool` is healthy right now.
bool hasHealthyServer(const PoolRuntime& pool);

class Runtime {
 public:
  // Builds from `config`, taking over servers of `previous` whose pool and
  // address are unchanged. Null with errors when a server address cannot be
  // resolved. Servers with `resolve` are the addresses in `discovered` (none
  // until the first answer); with the same config as `previous` (a DNS
  // change), its TLS contexts are kept rather than read again.
  static std::shared_ptr<const Runtime> build(std::shared_ptr<const conf::Config> config,
                                              const Runtime* previous, uint64_t generation,
                                              observe::Metrics& metrics,
                                              const std::shared_ptr<tls::TicketKeys>& tickets,
                                              std::vector<conf::ConfigError>& errors,
                                              const DiscoveredAddresses* discovered = nullptr);

  const conf::Config& config() const { return *config_; }
  const std::shared_ptr<const conf::Config>& configPtr() const { return config_; }
  uint64_t generation() const { return generation_; }
  const std::vector<PoolRuntime>& pools() const { return pools_; }
  const std::vector<ListenerRuntime>& listeners() const { return listeners_; }
  // nullptr when no listener has that name.
  const ListenerRuntime* findListener(const std::string& name) const;
  // The response cache shared by all workers; null without a cache section.
  // Kept across reloads while cache.max_size stays.
  const std::shared_ptr<cache::ResponseCache>& cache() const { return cache_; }
  std::array<observe::CounterCell, observe::kCacheResults>* cacheResults() const {
    return cache_results_;
  }
  // What the workers' Redis clients share and count into (cluster-scope rate limits).
  ClusterStatus& clusterStatus() const { return *cluster_status_; }
  observe::Metrics::ClusterCells& clusterCalls() const { return *cluster_calls_; }

 private:
  std::shared_ptr<const conf::Config> config_;
  uint64_t generation_ = 0;
  std::vector<PoolRuntime> pools_;
  std::vector<ListenerRuntime> listeners_;
  std::shared_ptr<cache::ResponseCache> cache_;
  std::array<observe::CounterCell, observe::kCacheResults>* cache_results_ = nullptr;
  std::shared_ptr<ClusterStatus> cluster_status_;  // kept across reloads
  observe::Metrics::ClusterCells* cluster_calls_ = nullptr;
};

}  // namespace crest::proxy
