#include "proxy/runtime.h"

#include <catch2/catch.hpp>

#include "conf/loader.h"

using namespace crest;
using namespace crest::proxy;
using crest::observe::Metrics;

namespace {

std::shared_ptr<const conf::Config> config(const std::string& pools) {
  auto r = conf::loadConfigText(
      "listeners:\n  - name: public\n    listen: 127.0.0.1:8080\n    routes:\n      - pool: "
      "web\npools:\n" +
          pools,
      "crest.yaml", "/tmp");
  INFO((r.errors.empty() ? "" : r.errors[0].format()));
  REQUIRE(r.config);
  return r.config;
}

std::shared_ptr<const Runtime> build(const std::shared_ptr<const conf::Config>& c,
                                     const Runtime* previous, Metrics& metrics) {
  std::vector<conf::ConfigError> errors;
  auto rt = Runtime::build(c, previous, previous ? previous->generation() + 1 : 1, metrics,
                           std::make_shared<tls::TicketKeys>(), errors);
  REQUIRE(errors.empty());
  return rt;
}

}  // namespace

TEST_CASE("runtime: servers that stay keep their state across a rebuild") {
  Metrics metrics;
  auto first = build(config("  web:\n    servers:\n      - address: 127.0.0.1:9001\n      - "
                            "address: 127.0.0.1:9002\n"),
                     nullptr, metrics);
  UpstreamServer* kept = first->pools()[0].servers[0].get();
  kept->healthy = false;
  kept->active_requests = 3;
  auto second = build(
      config("  web:\n    balance: least_conn\n    servers:\n      - address: 127.0.0.1:9001\n"
             "        weight: 5\n      - address: 127.0.0.1:9003\n  other:\n    servers:\n"
             "      - address: 127.0.0.1:9002\n"),
      first.get(), metrics);
  REQUIRE(second->generation() == 2);
  const auto& web = second->pools()[0];
  CHECK(web.servers[0].get() == kept);
  CHECK_FALSE(web.servers[0]->healthy.load());
  CHECK(web.servers[0]->active_requests.load() == 3);
  CHECK(web.servers[1]->healthy.load());
  // The same address in another pool is another server.
  CHECK(second->pools()[1].servers[0].get() != first->pools()[0].servers[1].get());
  // Requests still running on the old runtime keep its servers alive.
  CHECK(first->pools()[0].servers[1]->address == "127.0.0.1:9002");
}

TEST_CASE("runtime: an address that does not resolve is an error at its line") {
  Metrics metrics;
  std::vector<conf::ConfigError> errors;
  auto rt =
      Runtime::build(config("  web:\n    servers:\n      - address: no-such-host.invalid:80\n"),
                     nullptr, 1, metrics, std::make_shared<tls::TicketKeys>(), errors);
  CHECK(rt == nullptr);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].field == "pools.web.servers[0].address");
  CHECK(errors[0].line == 9);
}
