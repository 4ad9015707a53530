#pragma once
// DNS service discovery for servers with `resolve: true`: every A and AAAA
// record of the name is a server. Looked up with libevent's asynchronous
// resolver on the main thread, at resolver.interval and sooner when the
// records' TTL ends; when a name's set of addresses changes, `on_change`
// runs and the server rebuilds the runtime from addresses(), the way a
// reload publishes one. A failed or empty answer keeps the last set.
// Main thread only.

#include <event2/dns.h>
#include <event2/event.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "conf/config.h"
#include "io/socket_io.h"
#include "observe/metrics.h"
#include "proxy/runtime.h"

namespace crest::server {

class ServiceDiscovery {
 public:
  ServiceDiscovery(event_base* base, observe::Metrics& metrics, std::function<void()> on_change);
  ~ServiceDiscovery();
  ServiceDiscovery(const ServiceDiscovery&) = delete;
  ServiceDiscovery& operator=(const ServiceDiscovery&) = delete;

  // Follows the `resolve` servers of `config` (at start and after each
  // reload): names it followed already keep their addresses, new ones are
  // looked up at once.
  void follow(const conf::Config& config);
  // The addresses known now, by pool and server name.
  const proxy::DiscoveredAddresses& addresses() const { return addresses_; }

 private:
  struct Target;
  struct Lookup;
  static void onAnswer(int result, char type, int count, int ttl, void* addresses, void* arg);
  static void onTimer(evutil_socket_t, short, void* arg);
  void start(const std::shared_ptr<Target>& target);
  void finish(Target& target);
  void resetResolver(const conf::Resolver& resolver);

  event_base* base_;
  observe::Metrics& metrics_;
  std::function<void()> on_change_;
  evdns_base* dns_ = nullptr;
  conf::Resolver resolver_;
  std::map<std::string, std::shared_ptr<Target>> targets_;  // by the addresses_ key
  proxy::DiscoveredAddresses addresses_;
};

}  // namespace crest::server
