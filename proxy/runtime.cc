#include "proxy/runtime.h"

namespace crest::proxy {

using observe::Metrics;
using namespace io;

namespace {

std::shared_ptr<UpstreamServer> findServer(const Runtime* previous, const std::string& pool,
                                           const std::string& address) {
  if (previous == nullptr) return nullptr;
  for (const auto& p : previous->pools()) {
    if (p.config->name != pool) continue;
    for (const auto& s : p.servers) {
      if (s->address == address) return s;
    }
  }
  return nullptr;
}

// The admission queue `previous` has for the same pool with the same limits.
std::shared_ptr<limits::AdmissionQueue> admissionFor(const Runtime* previous,
                                                     const conf::Pool& pool) {
  if (pool.max_active_requests == 0) return nullptr;
  uint32_t queue_size = pool.queue ? pool.queue->size : 0;
  uint32_t reserved_high = pool.queue ? pool.queue->reserved_high : 0;
  if (previous != nullptr) {
    for (const auto& p : previous->pools()) {
      if (p.config->name == pool.name && p.admission &&
          p.admission->maxActive() == pool.max_active_requests &&
          p.admission->queueSize() == queue_size && p.admission->reservedHigh() == reserved_high)
        return p.admission;
    }
  }
  return std::make_shared<limits::AdmissionQueue>(pool.max_active_requests, queue_size,
                                                  reserved_high);
}

// The rate limiter `previous` has at the same listener and route position
// with the same limit and key.
std::shared_ptr<limits::RateLimiter> rateLimiterFor(const Runtime* previous,
                                                    const std::string& listener, size_t route,
                                                    const conf::RateLimit& limit) {
  limits::BucketSpec spec{limit.tokens_per_second, limit.burst};
  if (previous != nullptr) {
    const ListenerRuntime* l = previous->findListener(listener);
    if (l != nullptr && route < l->routes.size() && l->routes[route].rate_limiter) {
      const auto& old_limit = l->config->routes[route].rate_limit;
      const auto& old_spec = l->routes[route].rate_limiter->spec();
      if (old_limit && old_limit->key.kind == limit.key.kind &&
          old_limit->key.name == limit.key.name &&
          old_spec.tokens_per_second == spec.tokens_per_second && old_spec.burst == spec.burst)
        return l->routes[route].rate_limiter;
    }
  }
  return std::make_shared<limits::RateLimiter>(spec);
}

}  // namespace

std::shared_ptr<const Runtime> Runtime::build(std::shared_ptr<const conf::Config> config,
                                              const Runtime* previous, uint64_t generation,
                                              Metrics& metrics,
                                              const std::shared_ptr<tls::TicketKeys>& tickets,
                                              std::vector<conf::ConfigError>& errors,
                                              const DiscoveredAddresses* discovered) {
  auto rt = std::shared_ptr<Runtime>(new Runtime());
  rt->config_ = std::move(config);
  rt->generation_ = generation;
  const conf::Config& cfg = *rt->config_;
  size_t errors_before = errors.size();
  rt->cache_results_ = metrics.cacheCells();
  rt->cluster_calls_ = &metrics.clusterCells();
  rt->cluster_status_ =
      previous != nullptr ? previous->cluster_status_ : std::make_shared<ClusterStatus>();
  if (cfg.cache) {
    if (previous != nullptr && previous->cache_ &&
        previous->cache_->maxBytes() == cfg.cache->max_size) {
      rt->cache_ = previous->cache_;
    } else {
      rt->cache_ = std::make_shared<cache::ResponseCache>(cfg.cache->max_size);
    }
  }
  rt->pools_.reserve(cfg.pools.size());
  for (const auto& pool : cfg.pools) {
    PoolRuntime pr;
    pr.config = &pool;
    pr.index = rt->pools_.size();
    pr.metrics = metrics.poolCells(pool.name);
    pr.admission = admissionFor(previous, pool);
    std::vector<balancer::Member> members;
    auto add = [&](std::shared_ptr<UpstreamServer> server, uint32_t weight) {
      members.push_back({server.get(), weight});
      pr.servers.push_back(std::move(server));
    };
    for (const auto& s : pool.servers) {
      if (s.resolve) {
        auto found = discovered ? discovered->find(discoveredKey(pool.name, s.address.text))
                                : DiscoveredAddresses::const_iterator();
        if (!discovered || found == discovered->end()) continue;
        for (const auto& addr : found->second) {
          std::string text = addressWithPort(addr.storage);
          auto server = findServer(previous, pool.name, text);
          if (!server) {
            server = std::make_shared<UpstreamServer>(pool.name, text, addr,
                                                      metrics.serverCells(pool.name, text));
            // A new address of a checked pool joins after its first passing check.
            if (pool.health_check) server->healthy.store(false);
          }
          add(std::move(server), s.weight);
        }
        continue;
      }
      auto server = findServer(previous, pool.name, s.address.text);
      if (!server) {
        SocketAddress addr;
        std::string why;
        if (!resolveAddress(s.address, addr, why)) {
          errors.push_back({cfg.path, s.mark.line, s.mark.column, s.field_path + ".address", why});
          continue;
        }
        server = std::make_shared<UpstreamServer>(pool.name, s.address.text, addr,
                                                  metrics.serverCells(pool.name, s.address.text));
      }
      add(std::move(server), s.weight);
    }
    pr.balancer = balancer::makeBalancer(pool.balance, std::move(members));
    rt->pools_.push_back(std::move(pr));
  }
  if (errors.size() != errors_before) return nullptr;
  auto poolNamed = [&rt](const std::string& name) -> const PoolRuntime* {
    for (const auto& p : rt->pools_) {
      if (p.config->name == name) return &p;
    }
    return nullptr;  // the loader has checked every name
  };
  for (const auto& l : cfg.listeners) {
    ListenerRuntime lr{&l, nullptr, Router(l.routes), {}, {}};
    // Certificates are read again on every load: a reload picks up renewed
    // files. A DNS change rebuilds with the same configuration: they stay.
    const ListenerRuntime* same =
        previous && previous->config_ == rt->config_ ? previous->findListener(l.name) : nullptr;
    if (same) {
      lr.tls = same->tls;
    } else if (l.tls) {
      lr.tls = tls::ServerTls::build(*l.tls, tickets, cfg.path, errors);
    }
    for (const auto& p : rt->pools_)
      lr.request_cells.push_back(metrics.requestCells(l.name, p.config->name));
    lr.request_cells.push_back(metrics.requestCells(l.name, ""));
    for (const auto& route : l.routes) {
      RouteTarget target;
      if (route.rate_limit)
        target.rate_limiter = rateLimiterFor(previous, l.name, lr.routes.size(), *route.rate_limit);
      // Both enums order high, normal, low.
      target.priority = static_cast<limits::Priority>(route.priority);
      if (route.split) {
        std::vector<const PoolRuntime*> pools;
        std::vector<uint32_t> weights;
        for (const auto& t : route.split->pools) {
          pools.push_back(poolNamed(t.pool));
          weights.push_back(t.weight);
        }
        target.split = std::make_unique<SplitRuntime>(SplitRuntime{
            std::move(pools), balancer::WeightedSplit(std::move(weights)), route.split->sticky});
      } else {
        target.pool = poolNamed(route.pool);
      }
      if (route.mirror) target.mirror_pool = poolNamed(route.mirror->pool);
      lr.routes.push_back(std::move(target));
    }
    rt->listeners_.push_back(std::move(lr));
  }
  if (errors.size() != errors_before) return nullptr;
  return rt;
}

bool hasHealthyServer(const PoolRuntime& pool) {
  for (const auto& s : pool.servers) {
    if (s->healthy.load(std::memory_order_relaxed)) return true;
  }
  return false;
}

const ListenerRuntime* Runtime::findListener(const std::string& name) const {
  for (const auto& l : listeners_) {
    if (l.config->name == name) return &l;
  }
  return nullptr;
}

}  // namespace crest::proxy
