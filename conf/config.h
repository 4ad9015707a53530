#pragma once
// The validated, immutable configuration. Built once per (re)load by
// conf::loadConfig and shared by pointer; every field has its default here,
// so a struct read from a minimal file is complete.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "conf/cidr.h"
#include "conf/status_ranges.h"
#include "conf/units.h"

namespace crest::conf {

using namespace std::chrono_literals;

// Where a value stands in the YAML file, for errors found after loading
// (a certificate that does not load, a server name that does not resolve).
struct SourceMark {
  int line = 0;  // 1-based
  int column = 0;
};

struct Limits {
  uint64_t max_header_bytes = 16 * 1024;
  uint32_t max_headers = 100;
  uint64_t max_request_body = 0;  // 0 = unlimited
  uint32_t max_connections =
      0;  // client connections, all listeners; 0 = auto (half the open-files limit)
  uint32_t max_connections_per_client = 0;  // 0 = unlimited
  bool operator==(const Limits&) const = default;
};

struct UpstreamTimeouts {
  Duration connect = 2s;
  Duration response = 30s;
  Duration idle = 60s;
  bool operator==(const UpstreamTimeouts&) const = default;
};

struct Timeouts {
  Duration client_header = 10s;
  Duration client_idle = 60s;
  Duration tunnel_idle = 5min;  // a WebSocket tunnel with no bytes either way
  UpstreamTimeouts upstream;
  bool operator==(const Timeouts&) const = default;
};

struct TlsCertificate {
  std::string cert;  // absolute path
  std::string key;
  SourceMark mark;
  std::string field_path;  // listeners[0].tls.certificates[1]
  // Where it stands in the file is not part of the value.
  bool operator==(const TlsCertificate& o) const { return cert == o.cert && key == o.key; }
};

struct TlsConfig {
  std::vector<TlsCertificate> certificates;  // the first is the default
  std::string min_version = "1.2";
  std::vector<std::string> alpn{"h2", "http/1.1"};
  // Stateless resumption tickets (keys shared by the workers, rotated). Off:
  // resumption from the server's session cache only, as NGINX's
  // `ssl_session_tickets off` and HAProxy's `no-tls-tickets`.
  bool session_tickets = true;
  bool operator==(const TlsConfig&) const = default;
};

struct HeaderMatch {
  std::string name;  // lower-case
  std::string value;
  bool operator==(const HeaderMatch&) const = default;
};

struct RouteMatch {
  std::string host;         // lower-case; "" = any, "*.example.com" = any subdomain
  std::string path_prefix;  // "" = any
  std::vector<HeaderMatch> headers;
  bool operator==(const RouteMatch&) const = default;
};

// The key that keeps a client on one pool (split) or one bucket (rate limit).
struct RequestKey {
  enum class Kind { None, ClientIp, Cookie, Header };
  Kind kind = Kind::None;
  std::string name;  // cookie or header name for Cookie / Header
  bool operator==(const RequestKey&) const = default;
};

struct SplitTarget {
  std::string pool;
  uint32_t weight = 0;
  bool operator==(const SplitTarget&) const = default;
};

struct Split {
  RequestKey sticky;
  std::vector<SplitTarget> pools;
  bool operator==(const Split&) const = default;
};

enum class Priority { High, Normal, Low };

struct RateLimit {
  RequestKey key;
  double tokens_per_second = 0;
  uint32_t burst = 0;
  bool cluster = false;  // scope: cluster: one bucket in Redis for every instance
  bool operator==(const RateLimit&) const = default;
};

struct Fallback {
  int status = 503;
  std::string body;
  std::string content_type = "text/plain";
  bool operator==(const Fallback&) const = default;
};

// Faults injected on purpose into a share of a route's requests (rehearsals).
struct Fault {
  Duration delay = 0s;
  double delay_percent = 0;  // 0-100
  int abort_status = 503;
  double abort_percent = 0;  // 0-100
  std::string header;        // lower-case; "" = every request is eligible
  bool operator==(const Fault&) const = default;
};

// A copy of a share of a route's requests sent to another pool; its
// answer is read and dropped.
struct Mirror {
  std::string pool;
  double percent = 100;           // 0-100
  uint64_t max_body = 64 * 1024;  // requests with bigger bodies are not mirrored
  bool operator==(const Mirror&) const = default;
};

struct RouteCache {
  Duration ttl = 0s;
  Duration stale = 0s;
  bool operator==(const RouteCache&) const = default;
};

// Who may use a route: deny is checked first, then allow (absent = everyone
// not denied; empty = no one).
struct Access {
  std::optional<std::vector<CidrBlock>> allow;
  std::vector<CidrBlock> deny;
  bool operator==(const Access&) const = default;
};

struct Route {
  RouteMatch match;
  std::string pool;            // set when the route names one pool
  std::optional<Split> split;  // set when the route splits over pools
  Priority priority = Priority::Normal;
  std::optional<RateLimit> rate_limit;
  std::optional<Fallback> fallback;
  std::optional<RouteCache> cache;
  std::optional<Access> access;
  std::optional<Fault> fault;
  std::optional<Mirror> mirror;
  bool operator==(const Route&) const = default;
};

// HTTP/2 from clients: over TLS when ALPN chooses h2, on plain listeners
// when a connection opens with the HTTP/2 preface (prior knowledge).
struct Http2Config {
  uint32_t max_concurrent_streams = 128;
  uint64_t initial_window = 64 * 1024;  // per-stream receive window
  bool h2c = true;
  bool operator==(const Http2Config&) const = default;
};

struct Listener {
  std::string name;
  HostPort listen;
  std::optional<TlsConfig> tls;
  Http2Config http2;
  // Every connection opens with a PROXY protocol header (v1 or v2) from an
  // L4 balancer: its source address is the client.
  bool proxy_protocol = false;
  // Peers whose X-Forwarded-For is believed: the rightmost untrusted address
  // in it is the client.
  std::vector<CidrBlock> trusted_proxies;
  std::vector<Route> routes;
  bool operator==(const Listener&) const = default;
};

struct Server {
  HostPort address;
  uint32_t weight = 1;
  // Every A/AAAA record of the name is a server, followed while running
  // (resolver.interval, or sooner when the records' TTL ends).
  bool resolve = false;
  SourceMark mark;
  std::string field_path;
  // Where it stands in the file is not part of the value; its text is (metrics name it).
  bool operator==(const Server& o) const {
    return address == o.address && address.text == o.address.text && weight == o.weight &&
           resolve == o.resolve;
  }
};

struct HealthCheck {
  std::string path = "/";
  std::string host;  // "" = the server address
  Duration interval = 5s;
  Duration timeout = 2s;
  uint32_t healthy_threshold = 2;
  uint32_t unhealthy_threshold = 3;
  StatusRanges expected_status{{{200, 399}}};
  bool operator==(const HealthCheck&) const = default;
};

struct Queue {
  uint32_t size = 0;
  Duration timeout = 0s;
  uint32_t reserved_high = 0;  // slots of max_active_requests only high priority may take
  bool operator==(const Queue&) const = default;
};

struct Pool {
  std::string name;
  std::string balance = "round_robin";
  uint32_t retries = 1;
  UpstreamTimeouts timeouts;  // the global ones with this pool's overrides applied
  std::vector<Server> servers;
  std::optional<HealthCheck> health_check;
  uint32_t max_active_requests = 0;  // 0 = unlimited
  std::optional<Queue> queue;
  bool operator==(const Pool&) const = default;
};

// State every crest instance shares: cluster-scope rate limits in Redis.
struct Cluster {
  HostPort redis;          // host and port; for a Unix socket, unix_path instead
  std::string unix_path;   // "unix:/path" in the file
  std::string redis_text;  // as written, for messages
  Duration timeout = 50ms;
  std::string key_prefix = "crest:";
  bool operator==(const Cluster&) const = default;
};

// How names of servers with `resolve` are looked up: these nameservers, or
// the system's resolv.conf when there are none.
struct Resolver {
  std::vector<HostPort> nameservers;
  Duration interval = 5s;
  bool operator==(const Resolver&) const = default;
};

struct Admin {
  std::optional<HostPort> listen;
  bool operator==(const Admin&) const = default;
};

struct Cache {
  uint64_t max_size = 0;
  bool operator==(const Cache&) const = default;
};

struct Config {
  std::string path;      // the file it was read from
  uint32_t workers = 0;  // 0 = auto (one per CPU)
  Duration shutdown_timeout = 10s;
  // How long a worker keeps polling for events after its last one before it
  // sleeps (docs/architecture.md); 0 = sleep at once.
  std::chrono::microseconds busy_poll{50};
  std::string access_log;  // "" = off, "-" = stdout, else an absolute path
  Admin admin;
  Limits limits;
  Timeouts timeouts;
  std::vector<Listener> listeners;
  std::vector<Pool> pools;  // in file order
  std::optional<Cache> cache;
  Resolver resolver;
  std::optional<Cluster> cluster;

  // The listener with that name and address, or nullptr.
  const Listener* findListener(const std::string& name, const HostPort& listen) const {
    for (const auto& l : listeners) {
      if (l.name == name && l.listen == listen) return &l;
    }
    return nullptr;
  }

  // nullptr when no pool has that name.
  const Pool* findPool(const std::string& name) const {
    for (const auto& p : pools) {
      if (p.name == name) return &p;
    }
    return nullptr;
  }
};

}  // namespace crest::conf
