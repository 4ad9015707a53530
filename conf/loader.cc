#include "conf/loader.h"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "conf/route_reader.h"

namespace crest::conf {
namespace {

constexpr uint32_t kMaxWeight = 1000;

SourceMark sourceMark(const YAML::Node& node) {
  auto m = node.Mark();
  return SourceMark{m.line + 1, m.column + 1};
}

class Loader {
 public:
  Loader(std::string file, std::string base_dir) : errors_(file), base_dir_(std::move(base_dir)) {
    config_.path = std::move(file);
  }

  LoadResult load(const std::string& text) {
    YAML::Node root;
    try {
      root = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      errors_.add(e.mark, "", "invalid YAML: " + e.msg);
      return finish();
    }
    if (root.IsNull()) {
      errors_.addAt(0, 0, "", "the file is empty");
      return finish();
    }
    reportDuplicateKeys(errors_, root, "");
    readRoot(root);
    return finish();
  }

 private:
  LoadResult finish() {
    LoadResult result;
    result.errors = errors_.all();
    sortByPosition(result.errors);
    if (result.errors.empty()) result.config = std::make_shared<const Config>(std::move(config_));
    return result;
  }

  std::string resolvePath(const std::string& p) const {
    if (p.empty() || p.front() == '/' || base_dir_.empty()) return p;
    return base_dir_ + "/" + p;
  }

  void readRoot(const YAML::Node& root) {
    MapReader r(errors_, root, "",
                {"workers", "shutdown_timeout", "busy_poll", "access_log", "admin", "limits",
                 "timeouts", "listeners", "pools", "cache", "resolver", "cluster"});
    if (!r.isMap()) return;
    std::string workers;
    if (r.has("workers") && r.readString("workers", workers) && workers != "auto") {
      r.readUint("workers", config_.workers, 1, 256);
    }
    r.readDuration("shutdown_timeout", config_.shutdown_timeout);
    // Longer than a few milliseconds is no longer "between events" but a
    // worker that never sleeps: most likely a unit mistaken (50ms for 50us).
    if (r.readFineDuration("busy_poll", config_.busy_poll) && config_.busy_poll > 10ms) {
      errors_.add(r.get("busy_poll").Mark(), r.path("busy_poll"), "must be at most 10ms");
    }
    if (r.readString("access_log", config_.access_log) && config_.access_log != "-") {
      config_.access_log = resolvePath(config_.access_log);
    }
    if (r.has("admin")) readAdmin(r.get("admin"), r.path("admin"));
    if (r.has("limits")) readLimits(r.get("limits"), r.path("limits"));
    if (r.has("timeouts")) readGlobalTimeouts(r.get("timeouts"), r.path("timeouts"));
    if (r.has("cache")) readCache(r.get("cache"), r.path("cache"));
    if (r.has("resolver")) readResolver(r.get("resolver"), r.path("resolver"));
    if (r.has("cluster")) readCluster(r.get("cluster"), r.path("cluster"));
    // Pools first: pool timeouts override the global ones, and routes refer to pools.
    if (r.require("pools")) readPools(r.get("pools"), r.path("pools"));
    if (r.require("listeners")) {
      forEachItem(r, "listeners", [&](const YAML::Node& n, const std::string& path, size_t) {
        readListener(n, path);
      });
      if (r.get("listeners").IsSequence() && r.get("listeners").size() == 0) {
        errors_.add(r.get("listeners").Mark(), "listeners", "at least one listener is required");
      }
    }
    checkAddressesUnique();
  }

  void readAdmin(const YAML::Node& node, const std::string& path) {
    MapReader r(errors_, node, path, {"listen"});
    HostPort hp;
    if (r.readHostPort("listen", hp)) config_.admin.listen = hp;
  }

  void readLimits(const YAML::Node& node, const std::string& path) {
    MapReader r(errors_, node, path,
                {"max_header_bytes", "max_headers", "max_request_body", "max_connections",
                 "max_connections_per_client"});
    auto& l = config_.limits;
    if (r.readSize("max_header_bytes", l.max_header_bytes) &&
        (l.max_header_bytes < 256 || l.max_header_bytes > (64u << 20))) {
      errors_.add(r.get("max_header_bytes").Mark(), r.path("max_header_bytes"),
                  "must be from 256 bytes to 64MiB");
    }
    r.readUint("max_headers", l.max_headers, 1, 10000);
    r.readSize("max_request_body", l.max_request_body);
    r.readUint("max_connections", l.max_connections, 0, 10000000);
    r.readUint("max_connections_per_client", l.max_connections_per_client, 0, 10000000);
  }

  // Durations that must be positive.
  void readPositiveDuration(const MapReader& r, const char* key, Duration& out) {
    if (r.readDuration(key, out) && out.count() <= 0) {
      errors_.add(r.get(key).Mark(), r.path(key), "must be greater than 0");
    }
  }

  void readUpstreamTimeouts(const MapReader& r, UpstreamTimeouts& t) {
    readPositiveDuration(r, "upstream_connect", t.connect);
    readPositiveDuration(r, "upstream_response", t.response);
    readPositiveDuration(r, "upstream_idle", t.idle);
  }

  void readGlobalTimeouts(const YAML::Node& node, const std::string& path) {
    MapReader r(errors_, node, path,
                {"client_header", "client_idle", "tunnel_idle", "upstream_connect",
                 "upstream_response", "upstream_idle"});
    readPositiveDuration(r, "client_header", config_.timeouts.client_header);
    readPositiveDuration(r, "client_idle", config_.timeouts.client_idle);
    readPositiveDuration(r, "tunnel_idle", config_.timeouts.tunnel_idle);
    readUpstreamTimeouts(r, config_.timeouts.upstream);
  }

  void readCluster(const YAML::Node& node, const std::string& path) {
    MapReader r(errors_, node, path, {"redis", "timeout", "key_prefix"});
    Cluster c;
    if (r.require("redis") && r.readString("redis", c.redis_text)) {
      if (c.redis_text.rfind("unix:", 0) == 0 && c.redis_text.size() > 5) {
        c.unix_path = resolvePath(c.redis_text.substr(5));
      } else if (auto hp = parseHostPort(c.redis_text)) {
        c.redis = *hp;
      } else {
        errors_.add(r.get("redis").Mark(), r.path("redis"),
                    "expected host:port or unix:/path, got " + quote(c.redis_text));
      }
    }
    readPositiveDuration(r, "timeout", c.timeout);
    r.readString("key_prefix", c.key_prefix);
    config_.cluster = c;
  }

  void readResolver(const YAML::Node& node, const std::string& path) {
    MapReader r(errors_, node, path, {"nameservers", "interval"});
    forEachItem(r, "nameservers", [&](const YAML::Node& n, const std::string& item, size_t) {
      std::optional<HostPort> hp;
      if (n.IsScalar()) hp = parseHostPort(n.Scalar());
      if (hp) {
        config_.resolver.nameservers.push_back(*hp);
      } else {
        errors_.add(n.Mark(), item,
                    "expected a nameserver as ip:port, got " +
                        quote(n.IsScalar() ? n.Scalar() : "a non-scalar"));
      }
    });
    readPositiveDuration(r, "interval", config_.resolver.interval);
  }

  void readCache(const YAML::Node& node, const std::string& path) {
    MapReader r(errors_, node, path, {"max_size"});
    Cache c;
    if (r.require("max_size") && r.readSize("max_size", c.max_size) && c.max_size == 0) {
      errors_.add(r.get("max_size").Mark(), r.path("max_size"), "must be greater than 0");
    }
    config_.cache = c;
  }

  void readPools(const YAML::Node& node, const std::string& path) {
    if (!node.IsMap()) {
      errors_.add(node.Mark(), path, "expected a mapping of pool names to pools");
      return;
    }
    if (node.size() == 0) errors_.add(node.Mark(), path, "at least one pool is required");
    for (auto it = node.begin(); it != node.end(); ++it) {
      Pool pool;
      pool.name = it->first.Scalar();
      std::string pool_path = childPath(path, pool.name);
      if (!validToken(pool.name)) {
        errors_.add(it->first.Mark(), pool_path, "pool names are letters, digits, - and _");
      }
      readPool(it->second, pool_path, pool);
      config_.pools.push_back(std::move(pool));
    }
  }

  void readPool(const YAML::Node& node, const std::string& path, Pool& pool) {
    MapReader r(errors_, node, path,
                {"balance", "retries", "timeouts", "servers", "health_check", "max_active_requests",
                 "queue"});
    if (!r.isMap()) {
      if (node.IsNull()) errors_.add(node.Mark(), path, "a pool needs servers");
      return;
    }
    r.readChoice("balance", pool.balance, {"round_robin", "least_conn", "ip_hash"});
    r.readUint("retries", pool.retries, 0, 10);
    pool.timeouts = config_.timeouts.upstream;
    if (r.has("timeouts")) {
      MapReader t(errors_, r.get("timeouts"), r.path("timeouts"),
                  {"upstream_connect", "upstream_response", "upstream_idle"});
      readUpstreamTimeouts(t, pool.timeouts);
    }
    if (r.require("servers")) {
      std::set<std::string> seen;
      forEachItem(r, "servers", [&](const YAML::Node& n, const std::string& item, size_t) {
        MapReader s(errors_, n, item, {"address", "weight", "resolve"});
        if (!s.isMap()) return;
        Server server;
        server.mark = sourceMark(n);
        server.field_path = item;
        if (s.has("address")) server.mark = sourceMark(s.get("address"));
        if (s.require("address") && s.readHostPort("address", server.address) &&
            !seen.insert(server.address.text).second) {
          errors_.add(s.get("address").Mark(), s.path("address"),
                      "server " + quote(server.address.text) + " is listed twice in this pool");
        }
        s.readUint("weight", server.weight, 1, kMaxWeight);
        s.readBool("resolve", server.resolve);
        pool.servers.push_back(std::move(server));
      });
      if (r.get("servers").IsSequence() && r.get("servers").size() == 0) {
        errors_.add(r.get("servers").Mark(), r.path("servers"), "a pool needs at least one server");
      }
    }
    if (r.has("health_check"))
      pool.health_check = readHealthCheck(r.get("health_check"), r.path("health_check"));
    r.readUint("max_active_requests", pool.max_active_requests, 0, 1000000);
    if (r.has("queue")) {
      MapReader q(errors_, r.get("queue"), r.path("queue"), {"size", "timeout", "reserved_high"});
      Queue queue;
      q.readUint("size", queue.size, 0, 1000000);
      if (q.require("timeout")) readPositiveDuration(q, "timeout", queue.timeout);
      if (pool.max_active_requests == 0) {
        errors_.add(r.get("queue").Mark(), r.path("queue"),
                    "a queue needs max_active_requests greater than 0 in the same pool");
      } else if (q.readUint("reserved_high", queue.reserved_high, 0, 1000000) &&
                 queue.reserved_high >= pool.max_active_requests) {
        errors_.add(q.get("reserved_high").Mark(), q.path("reserved_high"),
                    "must be smaller than max_active_requests (" +
                        std::to_string(pool.max_active_requests) +
                        "): normal and low requests need at least one slot");
      }
      pool.queue = queue;
    }
  }

  HealthCheck readHealthCheck(const YAML::Node& node, const std::string& path) {
    HealthCheck hc;
    MapReader r(errors_, node, path,
                {"path", "host", "interval", "timeout", "healthy_threshold", "unhealthy_threshold",
                 "expected_status"});
    if (r.readString("path", hc.path) && (hc.path.empty() || hc.path.front() != '/')) {
      errors_.add(r.get("path").Mark(), r.path("path"), "must start with /, got " + quote(hc.path));
    }
    r.readString("host", hc.host);
    readPositiveDuration(r, "interval", hc.interval);
    readPositiveDuration(r, "timeout", hc.timeout);
    r.readUint("healthy_threshold", hc.healthy_threshold, 1, 100);
    r.readUint("unhealthy_threshold", hc.unhealthy_threshold, 1, 100);
    std::string expected;
    if (r.readString("expected_status", expected)) {
      auto ranges = StatusRanges::parse(expected);
      if (ranges) {
        hc.expected_status = *ranges;
      } else {
        errors_.add(
            r.get("expected_status").Mark(), r.path("expected_status"),
            "expected status codes and ranges like 200-399 or 200-299,304, got " + quote(expected));
      }
    }
    return hc;
  }

  void readListener(const YAML::Node& node, const std::string& path) {
    MapReader r(errors_, node, path,
                {"name", "listen", "tls", "http2", "proxy_protocol", "trusted_proxies", "routes"});
    if (!r.isMap()) return;
    Listener l;
    if (r.require("name") && r.readString("name", l.name)) {
      if (!validToken(l.name)) {
        errors_.add(r.get("name").Mark(), r.path("name"),
                    "listener names are letters, digits, - and _");
      }
      for (const auto& other : config_.listeners) {
        if (other.name == l.name) {
          errors_.add(r.get("name").Mark(), r.path("name"),
                      "listener name " + quote(l.name) + " is used twice");
        }
      }
    }
    if (r.require("listen") && r.readHostPort("listen", l.listen)) {
      listen_marks_.push_back({l.listen, r.get("listen").Mark(), r.path("listen")});
    }
    if (r.has("tls")) l.tls = readTls(r.get("tls"), r.path("tls"));
    if (r.has("http2")) {
      MapReader h(errors_, r.get("http2"), r.path("http2"),
                  {"max_concurrent_streams", "initial_window", "h2c"});
      h.readUint("max_concurrent_streams", l.http2.max_concurrent_streams, 1, 65536);
      // RFC 9113 6.9.2: a window is at most 2^31 - 1 bytes.
      if (h.readSize("initial_window", l.http2.initial_window) &&
          (l.http2.initial_window == 0 || l.http2.initial_window > 0x7fffffff)) {
        errors_.add(h.get("initial_window").Mark(), h.path("initial_window"),
                    "must be between 1 byte and 2147483647 bytes (2^31 - 1)");
      }
      h.readBool("h2c", l.http2.h2c);
    }
    r.readBool("proxy_protocol", l.proxy_protocol);
    readCidrList(r, "trusted_proxies", l.trusted_proxies);
    if (r.require("routes")) {
      forEachItem(r, "routes", [&](const YAML::Node& n, const std::string& item, size_t) {
        l.routes.push_back(RouteReader(errors_, config_).read(n, item));
      });
      if (r.get("routes").IsSequence() && r.get("routes").size() == 0) {
        errors_.add(r.get("routes").Mark(), r.path("routes"),
                    "a listener needs at least one route");
      }
    }
    config_.listeners.push_back(std::move(l));
  }

  TlsConfig readTls(const YAML::Node& node, const std::string& path) {
    TlsConfig tls;
    MapReader r(errors_, node, path, {"certificates", "min_version", "alpn", "session_tickets"});
    if (r.require("certificates")) {
      forEachItem(r, "certificates", [&](const YAML::Node& n, const std::string& item, size_t) {
        MapReader c(errors_, n, item, {"cert", "key"});
        TlsCertificate cert;
        cert.mark = sourceMark(n);
        cert.field_path = item;
        if (c.require("cert")) c.readString("cert", cert.cert);
        if (c.require("key")) c.readString("key", cert.key);
        cert.cert = resolvePath(cert.cert);
        cert.key = resolvePath(cert.key);
        tls.certificates.push_back(std::move(cert));
      });
      if (r.get("certificates").IsSequence() && r.get("certificates").size() == 0) {
        errors_.add(r.get("certificates").Mark(), r.path("certificates"),
                    "at least one certificate is required");
      }
    }
    r.readChoice("min_version", tls.min_version, {"1.2", "1.3"});
    r.readBool("session_tickets", tls.session_tickets);
    if (r.has("alpn")) {
      tls.alpn.clear();
      forEachItem(r, "alpn", [&](const YAML::Node& n, const std::string& item, size_t) {
        if (!n.IsScalar() || n.Scalar().empty() || n.Scalar().size() > 255) {
          errors_.add(n.Mark(), item, "expected a protocol name such as http/1.1");
          return;
        }
        tls.alpn.push_back(n.Scalar());
      });
    }
    return tls;
  }

  struct ListenMark {
    HostPort address;
    YAML::Mark mark;
    std::string path;
  };

  void checkAddressesUnique() {
    if (config_.admin.listen) {
      for (const auto& l : listen_marks_) {
        if (l.address == *config_.admin.listen) {
          errors_.add(l.mark, l.path, "address " + quote(l.address.text) + " is also admin.listen");
        }
      }
    }
    for (size_t i = 0; i < listen_marks_.size(); ++i) {
      for (size_t j = 0; j < i; ++j) {
        if (listen_marks_[i].address == listen_marks_[j].address) {
          errors_.add(listen_marks_[i].mark, listen_marks_[i].path,
                      "address " + quote(listen_marks_[i].address.text) + " is already used by " +
                          listen_marks_[j].path);
        }
      }
    }
  }

  ErrorList errors_;
  std::string base_dir_;
  Config config_;
  std::vector<ListenMark> listen_marks_;
};

std::string folderOf(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

LoadResult loadConfigFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    LoadResult result;
    result.errors.push_back(
        ConfigError{path, 0, 0, "", std::string("cannot read: ") + std::strerror(errno)});
    return result;
  }
  std::stringstream text;
  text << in.rdbuf();
  return loadConfigText(text.str(), path, folderOf(path));
}

LoadResult loadConfigText(const std::string& text, const std::string& file_name,
                          const std::string& base_dir) {
  // Absolute, so paths stay valid whatever the process's working directory becomes.
  std::error_code ec;
  std::string absolute_dir = std::filesystem::absolute(base_dir, ec).lexically_normal().string();
  if (ec) absolute_dir = base_dir;
  if (absolute_dir.size() > 1 && absolute_dir.back() == '/') absolute_dir.pop_back();
  return Loader(file_name, absolute_dir).load(text);
}

}  // namespace crest::conf
