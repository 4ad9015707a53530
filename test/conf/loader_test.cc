#include "conf/loader.h"

#include <catch2/catch.hpp>
#include <string>

using namespace crest::conf;

namespace {

LoadResult load(const std::string& yaml) {
  return loadConfigText(yaml, "crest.yaml", "/etc/crest");
}

// All error lines joined, for readable failures.
std::string errorsOf(const LoadResult& r) {
  std::string out;
  for (const auto& e : r.errors) out += e.format() + "\n";
  return out;
}

const char* kMinimal = R"(listeners:
  - name: public
    listen: 127.0.0.1:8080
    routes:
      - pool: web
pools:
  web:
    servers:
      - address: 127.0.0.1:9000
)";

}  // namespace

TEST_CASE("a minimal file gets every default") {
  auto r = load(kMinimal);
  INFO(errorsOf(r));
  REQUIRE(r.config);
  const Config& c = *r.config;
  CHECK(c.workers == 0);
  CHECK(c.shutdown_timeout == Duration(10000));
  CHECK(c.busy_poll == std::chrono::microseconds(50));
  CHECK(c.limits.max_header_bytes == 16 * 1024);
  CHECK(c.limits.max_headers == 100);
  CHECK(c.limits.max_request_body == 0);
  CHECK(c.timeouts.client_header == Duration(10000));
  CHECK(c.timeouts.upstream.response == Duration(30000));
  REQUIRE(c.pools.size() == 1);
  CHECK(c.pools[0].balance == "round_robin");
  CHECK(c.pools[0].retries == 1);
  CHECK(c.pools[0].servers[0].weight == 1);
  CHECK_FALSE(c.pools[0].health_check.has_value());
  CHECK_FALSE(c.admin.listen.has_value());
}

TEST_CASE("the full example loads with every key") {
  auto r = loadConfigFile(std::string(CREST_SOURCE_DIR) + "/conf/examples/full.yaml");
  INFO(errorsOf(r));
  REQUIRE(r.config);
  const Config& c = *r.config;
  CHECK(c.access_log == "-");
  CHECK(c.cache->max_size == 256u << 20);
  const Pool* api = c.findPool("api");
  REQUIRE(api);
  CHECK(api->balance == "least_conn");
  CHECK(api->timeouts.response == Duration(60000));
  CHECK(api->timeouts.connect == Duration(2000));  // inherited from the global timeouts
  CHECK(api->servers[0].weight == 3);
  REQUIRE(api->health_check);
  CHECK(api->health_check->host == "api.internal");
  CHECK(api->health_check->expected_status.contains(302));
  CHECK_FALSE(api->health_check->expected_status.contains(404));
  CHECK(api->queue->size == 1024);
  const auto& routes = c.listeners[0].routes;
  REQUIRE(routes.size() == 3);
  CHECK(routes[0].match.host == "api.example.com");
  CHECK(routes[0].match.headers[0].name == "x-plan");
  CHECK(routes[0].priority == Priority::High);
  REQUIRE(routes[1].split);
  CHECK(routes[1].split->sticky.kind == RequestKey::Kind::Cookie);
  CHECK(routes[1].split->sticky.name == "session");
  CHECK(routes[1].split->pools[1].weight == 5);
  CHECK(routes[1].rate_limit->tokens_per_second == 100);
  CHECK(routes[1].fallback->content_type == "application/json");
  CHECK(routes[1].fault->delay_percent == 0.5);
  CHECK(routes[1].fault->header == "x-crest-fault");
  CHECK(routes[1].mirror->pool == "api-canary");
  CHECK(routes[1].mirror->max_body == 64u << 10);
  CHECK(c.cluster->timeout == Duration(50));
  CHECK(routes[2].cache->stale == Duration(60000));
  CHECK(c.findPool("web")->servers[1].address.host == "::1");
  CHECK(c.findPool("web")->servers[2].resolve);
  CHECK(c.resolver.nameservers[0].port == 53);
  CHECK(c.resolver.interval == Duration(5000));
  CHECK(c.timeouts.tunnel_idle == Duration(300000));
  CHECK(c.limits.max_connections_per_client == 0);
  CHECK_FALSE(c.listeners[0].proxy_protocol);
  CHECK(c.listeners[0].trusted_proxies.size() == 2);
  REQUIRE(routes[0].access);
  CHECK(routes[0].access->deny[0].prefix == 24);
  CHECK(routes[0].access->allow->size() == 2);
}

TEST_CASE("address blocks, nameservers and access lists are checked where they are written") {
  auto r = load(std::string(kMinimal) + R"(resolver:
  nameservers: [not-an-address]
)");
  std::string all = errorsOf(r);
  CHECK(all.find("crest.yaml:11:17: resolver.nameservers[0]: expected a nameserver") !=
        std::string::npos);
  auto bad = load(R"(listeners:
  - name: public
    listen: 127.0.0.1:8080
    trusted_proxies: [10.0.0.1/8]
    routes:
      - pool: web
        access: {}
pools:
  web:
    servers:
      - address: 127.0.0.1:9000
)");
  std::string errors = errorsOf(bad);
  CHECK(errors.find("listeners[0].trusted_proxies[0]: host bits are set under /8") !=
        std::string::npos);
  CHECK(errors.find("listeners[0].routes[0].access: access needs allow, deny or both") !=
        std::string::npos);
}

TEST_CASE("a misspelled key is an error naming file, line, column and field") {
  auto r = load(R"(listeners:
  - name: public
    listen: 127.0.0.1:8080
    routes:
      - pool: web
pools:
  web:
    balanse: least_conn
    servers:
      - address: 127.0.0.1:9000
)");
  REQUIRE_FALSE(r.config);
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].format().rfind(
            "crest.yaml:8:5: pools.web.balanse: unknown field (allowed: balance,", 0) == 0);
}

TEST_CASE("a bad address names its field path and value") {
  auto r = load(R"(listeners:
  - name: public
    listen: 127.0.0.1:8080
    routes:
      - pool: api
pools:
  api:
    servers:
      - address: 10.0.0.11:8080
      - address: 10.0.0.1
)");
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].format() ==
        "crest.yaml:10:18: pools.api.servers[1].address: expected host:port, got \"10.0.0.1\"");
}

TEST_CASE("busy_poll takes microseconds, and refuses what is no longer a pause between events") {
  CHECK(load("busy_poll: 0\n" + std::string(kMinimal)).config->busy_poll.count() == 0);
  CHECK(load("busy_poll: 200us\n" + std::string(kMinimal)).config->busy_poll.count() == 200);
  auto too_long = load("busy_poll: 50ms\n" + std::string(kMinimal));
  REQUIRE(too_long.errors.size() == 1);
  CHECK(too_long.errors[0].format() == "crest.yaml:1:12: busy_poll: must be at most 10ms");
  auto malformed = load("busy_poll: fast\n" + std::string(kMinimal));
  REQUIRE(malformed.errors.size() == 1);
  CHECK(malformed.errors[0].format() ==
        "crest.yaml:1:12: busy_poll: expected a duration like 50us, 1ms or 0, got \"fast\"");
}

TEST_CASE("every error is reported at once") {
  auto r = load(R"(workers: many
shutdown_timeout: soon
limits:
  max_header_bytes: 16KB
listeners:
  - name: public
    listen: nowhere
    routes:
      - pool: missing
pools:
  web:
    balance: random
    servers:
      - address: 127.0.0.1:9000
        weight: 0
)");
  REQUIRE_FALSE(r.config);
  std::string all = errorsOf(r);
  INFO(all);
  CHECK(r.errors.size() == 7);
  CHECK(all.find("crest.yaml:1:10: workers: expected a whole number from 1 to 256, got \"many\"") !=
        std::string::npos);
  CHECK(all.find("crest.yaml:2:19: shutdown_timeout: expected a duration") != std::string::npos);
  CHECK(all.find("crest.yaml:4:21: limits.max_header_bytes: expected a size") != std::string::npos);
  CHECK(all.find("crest.yaml:7:13: listeners[0].listen: expected host:port") != std::string::npos);
  CHECK(
      all.find(
          "crest.yaml:9:15: listeners[0].routes[0].pool: unknown pool \"missing\" (pools: web)") !=
      std::string::npos);
  CHECK(all.find("crest.yaml:12:14: pools.web.balance: expected one of round_robin | least_conn | "
                 "ip_hash") != std::string::npos);
  CHECK(all.find("crest.yaml:15:17: pools.web.servers[0].weight: expected a whole number from 1 to "
                 "1000") != std::string::npos);
}

TEST_CASE("structural errors") {
  SECTION("invalid YAML has a position") {
    auto r = load("listeners: [\n  - name");
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].format().rfind("crest.yaml:", 0) == 0);
    CHECK(r.errors[0].message.find("invalid YAML") == 0);
  }
  SECTION("empty file") {
    auto r = load("");
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].format() == "crest.yaml: the file is empty");
  }
  SECTION("missing required sections") {
    auto r = load("workers: 2\n");
    std::string all = errorsOf(r);
    CHECK(all.find("pools: missing required field") != std::string::npos);
    CHECK(all.find("listeners: missing required field") != std::string::npos);
  }
  SECTION("a route needs exactly one of pool or split") {
    auto r = load(R"(listeners:
  - name: public
    listen: 127.0.0.1:8080
    routes:
      - match: {path_prefix: /}
pools:
  web:
    servers: [{address: 127.0.0.1:9000}]
)");
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].format() ==
          "crest.yaml:5:9: listeners[0].routes[0]: a route needs exactly one of pool or split");
  }
  SECTION("split weights may not all be zero") {
    auto r = load(R"(listeners:
  - name: public
    listen: 127.0.0.1:8080
    routes:
      - split:
          pools:
            - {pool: a, weight: 0}
            - {pool: b, weight: 0}
pools:
  a: {servers: [{address: 127.0.0.1:9000}]}
  b: {servers: [{address: 127.0.0.1:9001}]}
)");
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].field == "listeners[0].routes[0].split.pools");
  }
  SECTION("duplicate listener addresses and names") {
    auto r = load(R"(admin: {listen: 127.0.0.1:8081}
listeners:
  - {name: a, listen: 127.0.0.1:8080, routes: [{pool: web}]}
  - {name: a, listen: 127.0.0.1:8080, routes: [{pool: web}]}
  - {name: c, listen: 127.0.0.1:8081, routes: [{pool: web}]}
pools:
  web: {servers: [{address: 127.0.0.1:9000}, {address: 127.0.0.1:9000}]}
)");
    std::string all = errorsOf(r);
    INFO(all);
    CHECK(all.find("listeners[1].name: listener name \"a\" is used twice") != std::string::npos);
    CHECK(all.find("listeners[1].listen: address \"127.0.0.1:8080\" is already used by "
                   "listeners[0].listen") != std::string::npos);
    CHECK(all.find("listeners[2].listen: address \"127.0.0.1:8081\" is also admin.listen") !=
          std::string::npos);
    CHECK(all.find("pools.web.servers[1].address: server \"127.0.0.1:9000\" is listed twice") !=
          std::string::npos);
  }
  SECTION("sticky and rate keys") {
    auto r = load(R"(listeners:
  - name: public
    listen: 127.0.0.1:8080
    routes:
      - split: {sticky: ip, pools: [{pool: web, weight: 1}]}
        rate_limit: {key: none, rate: 10/h}
pools:
  web: {servers: [{address: 127.0.0.1:9000}]}
)");
    std::string all = errorsOf(r);
    INFO(all);
    CHECK(r.errors.size() == 3);
    CHECK(all.find(
              "split.sticky: expected none | client_ip | cookie:NAME | header:NAME, got \"ip\"") !=
          std::string::npos);
    CHECK(
        all.find("rate_limit.key: expected client_ip | cookie:NAME | header:NAME, got \"none\"") !=
        std::string::npos);
    CHECK(all.find("rate_limit.rate: expected a rate like 100/s or 600/m, got \"10/h\"") !=
          std::string::npos);
  }
}

TEST_CASE("relative paths are taken from the config file's folder") {
  auto r = load(R"(access_log: logs/access.log
listeners:
  - name: public
    listen: 127.0.0.1:8443
    tls:
      certificates:
        - {cert: certs/a.pem, key: /abs/a.key}
    routes: [{pool: web}]
pools:
  web: {servers: [{address: 127.0.0.1:9000}]}
)");
  INFO(errorsOf(r));
  REQUIRE(r.config);
  CHECK(r.config->access_log == "/etc/crest/logs/access.log");
  CHECK(r.config->listeners[0].tls->certificates[0].cert == "/etc/crest/certs/a.pem");
  CHECK(r.config->listeners[0].tls->certificates[0].key == "/abs/a.key");
}

TEST_CASE("session tickets are on unless a listener says false") {
  auto with = [](const std::string& line) {
    return load(R"(listeners:
  - name: public
    listen: 127.0.0.1:8443
    tls:
      certificates: [{cert: /a.pem, key: /a.key}]
)" + line + R"(    routes: [{pool: web}]
pools:
  web: {servers: [{address: 127.0.0.1:9000}]}
)");
  };
  CHECK(with("").config->listeners[0].tls->session_tickets);
  CHECK_FALSE(with("      session_tickets: false\n").config->listeners[0].tls->session_tickets);
  CHECK(with("      session_tickets: true\n").config->listeners[0].tls->session_tickets);
  auto yaml11 = with("      session_tickets: off\n");
  REQUIRE(yaml11.errors.size() == 1);
  CHECK(yaml11.errors[0].format() ==
        "crest.yaml:6:24: listeners[0].tls.session_tickets: expected true or false, got \"off\"");
}

TEST_CASE("an unreadable file is an error naming it") {
  auto r = loadConfigFile("/nonexistent/crest.yaml");
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].format() == "/nonexistent/crest.yaml: cannot read: No such file or directory");
}

TEST_CASE("a key given twice in one mapping is an error at the second, at any depth") {
  auto r = load(std::string("workers: 1\nworkers: 2\n") + kMinimal +
                "  web:\n    servers:\n      - address: 127.0.0.1:9001\n"
                "        weight: 2\n        weight: 3\n");
  REQUIRE_FALSE(r.config);
  std::string all = errorsOf(r);
  CHECK(all.find("crest.yaml:2:1: workers: given twice in one mapping (first at line 1)") !=
        std::string::npos);
  CHECK(all.find("crest.yaml:12:3: pools.web: given twice in one mapping (first at line 9)") !=
        std::string::npos);
  CHECK(all.find("crest.yaml:16:9: pools.web.servers[0].weight: given twice in one mapping "
                 "(first at line 15)") != std::string::npos);
  CHECK(r.errors.size() == 3);
}

TEST_CASE("errors are listed in the order of the file") {
  auto r = load(R"(listeners:
  - name: public
    listen: 127.0.0.1:8080
    routes:
      - pool: missing
pools:
  web:
    servers:
      - address: nowhere
workers: many
)");
  REQUIRE(r.errors.size() >= 3);
  for (size_t i = 1; i < r.errors.size(); ++i) {
    INFO(errorsOf(r));
    CHECK(std::make_pair(r.errors[i - 1].line, r.errors[i - 1].column) <=
          std::make_pair(r.errors[i].line, r.errors[i].column));
  }
}

TEST_CASE("a port out of range says so") {
  std::string text = kMinimal;
  text.replace(text.find("127.0.0.1:9000"), 14, "127.0.0.1:99999");
  auto r = load(text);
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].format() ==
        "crest.yaml:9:18: pools.web.servers[0].address: port out of range (1-65535) in "
        "\"127.0.0.1:99999\"");
  text.replace(text.find("127.0.0.1:99999"), 15, "\"[::1]:0\"");
  CHECK(load(text).errors.at(0).message == "port out of range (1-65535) in \"[::1]:0\"");
  text.replace(text.find("\"[::1]:0\""), 9, "nowhere:x");
  CHECK(load(text).errors.at(0).message == "expected host:port, got \"nowhere:x\"");
}

TEST_CASE("queue.reserved_high must be a whole number below max_active_requests") {
  auto pool = [](const char* reserved) {
    return std::string(kMinimal) + "    max_active_requests: 4\n    queue:\n      size: 10\n" +
           "      timeout: 1s\n      reserved_high: " + reserved + "\n";
  };
  auto ok = load(pool("3"));
  INFO(errorsOf(ok));
  REQUIRE(ok.config);
  CHECK(ok.config->pools[0].queue->reserved_high == 3);
  auto equal = load(pool("4"));
  REQUIRE(equal.errors.size() == 1);
  CHECK(equal.errors[0].format() ==
        "crest.yaml:14:22: pools.web.queue.reserved_high: must be smaller than "
        "max_active_requests (4): normal and low requests need at least one slot");
  auto negative = load(pool("-1"));
  REQUIRE(negative.errors.size() == 1);
  CHECK(negative.errors[0].message == "expected a whole number from 0 to 1000000, got \"-1\"");
}

TEST_CASE("scope: cluster needs the cluster section, which names a Redis server") {
  const std::string routes = R"(listeners:
  - name: public
    listen: 127.0.0.1:8080
    routes:
      - pool: web
        rate_limit: {rate: 10/s, scope: cluster}
pools:
  web:
    servers:
      - address: 127.0.0.1:9000
)";
  auto r = load(routes);
  CHECK(errorsOf(r).find("rate_limit.scope: scope: cluster needs the top-level cluster section") !=
        std::string::npos);
  auto ok = load("cluster: {redis: 127.0.0.1:6379, timeout: 20ms}\n" + routes);
  INFO(errorsOf(ok));
  REQUIRE(ok.config);
  CHECK(ok.config->cluster->redis.port == 6379);
  CHECK(ok.config->cluster->timeout == Duration(20));
  CHECK(ok.config->cluster->key_prefix == "crest:");
  CHECK(ok.config->listeners[0].routes[0].rate_limit->cluster);
  auto unix_socket = load("cluster: {redis: \"unix:/run/redis.sock\"}\n" + routes);
  REQUIRE(unix_socket.config);
  CHECK(unix_socket.config->cluster->unix_path == "/run/redis.sock");
  auto bad = load("cluster: {redis: \"not an address\"}\n" + routes);
  CHECK(errorsOf(bad).find("cluster.redis: expected host:port or unix:/path") != std::string::npos);
}
