#include "server/service_discovery.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "observe/log.h"

namespace crest::server {

namespace log = observe::log;
using std::chrono::milliseconds;

namespace {

// A lookup that finds nothing is tried again this soon, not at the interval:
// a name being created (a new Service) should not wait long.
constexpr milliseconds kRetryAfterFailure{1000};
// The shortest wait a record's TTL may ask for.
constexpr milliseconds kMinimumWait{1000};

bool sameAddresses(const std::vector<io::SocketAddress>& a,
                   const std::vector<io::SocketAddress>& b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](const auto& x, const auto& y) {
           return x.length == y.length && std::memcmp(&x.storage, &y.storage, x.length) == 0;
         });
}

}  // namespace

// One followed name: a `resolve` server of a pool.
struct ServiceDiscovery::Target {
  std::string key;
  std::string pool;
  conf::HostPort address;
  event* timer = nullptr;
  int pending = 0;  // A and AAAA answers still to come
  std::vector<io::SocketAddress> found;
  int ttl = 0;         // the shortest TTL of this round's records
  bool known = false;  // a lookup has answered since the name was followed
  ServiceDiscovery* owner = nullptr;
  ~Target() {
    if (timer) event_free(timer);
  }
};

// An answer on its way: the target may be dropped (a reload) before it comes.
struct ServiceDiscovery::Lookup {
  std::weak_ptr<Target> target;
  int family;
};

ServiceDiscovery::ServiceDiscovery(event_base* base, observe::Metrics& metrics,
                                   std::function<void()> on_change)
    : base_(base), metrics_(metrics), on_change_(std::move(on_change)) {}

ServiceDiscovery::~ServiceDiscovery() {
  targets_.clear();
  // Pending requests are answered with DNS_ERR_SHUTDOWN; their targets are gone.
  if (dns_) evdns_base_free(dns_, 1);
}

void ServiceDiscovery::resetResolver(const conf::Resolver& resolver) {
  if (dns_ && resolver.nameservers == resolver_.nameservers) {
    resolver_ = resolver;
    return;
  }
  if (dns_) evdns_base_free(dns_, 1);
  resolver_ = resolver;
  if (resolver.nameservers.empty()) {
    dns_ = evdns_base_new(base_, EVDNS_BASE_INITIALIZE_NAMESERVERS);
  } else {
    dns_ = evdns_base_new(base_, 0);
    for (const auto& ns : resolver.nameservers) {
      std::string text = ns.host.find(':') != std::string::npos
                             ? "[" + ns.host + "]:" + std::to_string(ns.port)
                             : ns.host + ":" + std::to_string(ns.port);
      if (evdns_base_nameserver_ip_add(dns_, text.c_str()) != 0)
        log::error("resolver: cannot use nameserver " + ns.text);
    }
  }
  if (dns_ == nullptr) {
    log::error(
        "resolver: cannot start (no usable resolv.conf?); resolved servers stay as they are");
    return;
  }
  // An answer within 2 s, one more try: a dead nameserver costs 4 s, not 15.
  evdns_base_set_option(dns_, "timeout:", "2");
  evdns_base_set_option(dns_, "attempts:", "2");
}

void ServiceDiscovery::follow(const conf::Config& config) {
  bool any = false;
  for (const auto& pool : config.pools)
    for (const auto& s : pool.servers) any |= s.resolve;
  if (!any) {
    targets_.clear();
    addresses_.clear();
    return;
  }
  resetResolver(config.resolver);
  std::map<std::string, std::shared_ptr<Target>> next;
  std::vector<std::shared_ptr<Target>> fresh;
  for (const auto& pool : config.pools) {
    for (const auto& s : pool.servers) {
      if (!s.resolve) continue;
      std::string key = proxy::discoveredKey(pool.name, s.address.text);
      auto old = targets_.find(key);
      if (old != targets_.end()) {
        next.emplace(key, old->second);
        continue;
      }
      auto t = std::make_shared<Target>();
      t->key = key;
      t->pool = pool.name;
      t->address = s.address;
      t->owner = this;
      t->timer = evtimer_new(base_, &ServiceDiscovery::onTimer, t.get());
      next.emplace(key, t);
      fresh.push_back(t);
    }
  }
  targets_ = std::move(next);
  for (auto it = addresses_.begin(); it != addresses_.end();) {
    it = targets_.count(it->first) ? std::next(it) : addresses_.erase(it);
  }
  for (const auto& t : fresh) start(t);
}

void ServiceDiscovery::start(const std::shared_ptr<Target>& target) {
  Target& t = *target;
  t.found.clear();
  t.ttl = 0;
  // An address needs no lookup.
  io::SocketAddress literal;
  if (io::parseAddress(t.address.host, literal.storage)) {
    literal.length =
        literal.storage.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
    t.found.push_back(literal);
    t.ttl = 0;
    finish(t);
    return;
  }
  if (dns_ == nullptr) {
    finish(t);
    return;
  }
  t.pending = 2;
  for (int family : {AF_INET, AF_INET6}) {
    auto* lookup = new Lookup{target, family};
    evdns_request* req = family == AF_INET
                             ? evdns_base_resolve_ipv4(dns_, t.address.host.c_str(),
                                                       DNS_QUERY_NO_SEARCH, &onAnswer, lookup)
                             : evdns_base_resolve_ipv6(dns_, t.address.host.c_str(),
                                                       DNS_QUERY_NO_SEARCH, &onAnswer, lookup);
    if (req == nullptr) {  // not started: no answer will come
      delete lookup;
      if (--t.pending == 0) finish(t);
    }
  }
}

void ServiceDiscovery::onAnswer(int result, char type, int count, int ttl, void* addresses,
                                void* arg) {
  std::unique_ptr<Lookup> lookup(static_cast<Lookup*>(arg));
  auto target = lookup->target.lock();
  if (!target) return;
  Target& t = *target;
  if (result == DNS_ERR_NONE) {
    for (int i = 0; i < count; ++i) {
      io::SocketAddress a;
      if (type == DNS_IPv4_A) {
        auto& in = reinterpret_cast<sockaddr_in&>(a.storage);
        in.sin_family = AF_INET;
        in.sin_port = htons(t.address.port);
        std::memcpy(&in.sin_addr, static_cast<const char*>(addresses) + 4 * i, 4);
        a.length = sizeof(sockaddr_in);
      } else if (type == DNS_IPv6_AAAA) {
        auto& in6 = reinterpret_cast<sockaddr_in6&>(a.storage);
        in6.sin6_family = AF_INET6;
        in6.sin6_port = htons(t.address.port);
        std::memcpy(&in6.sin6_addr, static_cast<const char*>(addresses) + 16 * i, 16);
        a.length = sizeof(sockaddr_in6);
      } else {
        continue;
      }
      t.found.push_back(a);
    }
    if (count > 0 && (t.ttl == 0 || ttl < t.ttl)) t.ttl = ttl;
  }
  if (--t.pending == 0) t.owner->finish(t);
}

void ServiceDiscovery::finish(Target& t) {
  bool ok = !t.found.empty();
  metrics_.poolCells(t.pool)->lookups[ok ? 0 : 1].add();
  std::sort(t.found.begin(), t.found.end(), [](const auto& x, const auto& y) {
    return io::addressWithPort(x.storage) < io::addressWithPort(y.storage);
  });
  milliseconds wait = resolver_.interval;
  if (!ok) {
    // Nothing, or an error: the last known set stays.
    if (t.known || !addresses_.count(t.key))
      log::warn("resolver: pool " + t.pool + ": " + t.address.host +
                " gave no address; keeping the " + std::to_string(addresses_[t.key].size()) +
                " known");
    wait = std::min(wait, kRetryAfterFailure);
  } else {
    if (t.ttl > 0) wait = std::clamp<milliseconds>(std::chrono::seconds(t.ttl), kMinimumWait, wait);
    auto& current = addresses_[t.key];
    if (!sameAddresses(current, t.found)) {
      log::info("resolver: pool " + t.pool + ": " + t.address.host + " now has " +
                std::to_string(t.found.size()) + " address(es), had " +
                std::to_string(current.size()));
      current = t.found;
      t.known = true;
      if (on_change_) on_change_();
    }
    t.known = true;
  }
  timeval tv{wait.count() / 1000, static_cast<suseconds_t>(wait.count() % 1000 * 1000)};
  evtimer_add(t.timer, &tv);
}

void ServiceDiscovery::onTimer(evutil_socket_t, short, void* arg) {
  auto* t = static_cast<Target*>(arg);
  auto found = t->owner->targets_.find(t->key);
  if (found != t->owner->targets_.end()) t->owner->start(found->second);
}

}  // namespace crest::server
