// Each stage alone, against a fake client and context: no sockets, and a
// clock that moves only when the test moves it.

#include <catch2/catch.hpp>

#include "test/proxy/stage_bench.h"

using namespace crest;
using namespace crest::proxy;
using namespace crest::proxy::testing;
using namespace std::chrono_literals;

namespace {

const std::string kGet = "GET /a HTTP/1.1\r\nHost: example.com\r\n\r\n";

std::string oneRoute(const std::string& route_extra, const std::string& pool_extra = "",
                     const std::string& top = "") {
  return top +
         "listeners:\n  - name: public\n    listen: 127.0.0.1:8080\n    routes:\n"
         "      - pool: web\n" +
         route_extra +
         "pools:\n  web:\n    servers:\n      - address: 127.0.0.1:9001\n"
         "      - address: 127.0.0.1:9002\n" +
         pool_extra;
}

}  // namespace

TEST_CASE("rate limit stage: a full bucket answers 429 until the clock refills it") {
  StageBench bench(oneRoute(
      "        rate_limit:\n          key: client_ip\n          rate: 1/s\n          burst: 2\n"));
  FakeClient client;
  for (int i = 0; i < 2; ++i) {
    auto exchange = bench.routed(client, kGet);
    CHECK(exchange->rate_limit.onRequest(*exchange) == StageResult::Continue);
    CHECK(contains(exchange->responseExtras(), "RateLimit-Limit: 2\r\n"));
  }
  auto refused = bench.routed(client, kGet);
  CHECK(refused->rate_limit.onRequest(*refused) == StageResult::Answered);
  REQUIRE(client.sent.size() == 1);
  CHECK(client.sent[0].status == 429);
  CHECK(client.sent[0].cause == LocalCause::RateLimited);
  CHECK(contains(client.sent[0].extras, "Retry-After: 1\r\n"));
  CHECK(contains(client.sent[0].extras, "RateLimit-Remaining: 0\r\n"));
  CHECK(client.done == 1);

  bench.context.time += 1s;
  auto later = bench.routed(client, kGet);
  CHECK(later->rate_limit.onRequest(*later) == StageResult::Continue);
  CHECK(client.sent.size() == 1);
}

TEST_CASE("rate limit stage: a route without a limit adds nothing") {
  StageBench bench(oneRoute(""));
  FakeClient client;
  auto exchange = bench.routed(client, kGet);
  CHECK(exchange->rate_limit.onRequest(*exchange) == StageResult::Continue);
  CHECK(exchange->responseExtras().empty());
}

namespace {

const std::string kCached = "        cache:\n          ttl: 5s\n          stale: 60s\n";
const std::string kCacheTop = "cache:\n  max_size: 1MiB\n";

// Stores a 200 for example.com/a, fresh for `fresh` from now.
void store(StageBench& bench, std::chrono::seconds fresh) {
  auto entry = std::make_shared<cache::StoredResponse>();
  entry->host = "example.com";
  entry->path = "/a";
  entry->status = 200;
  entry->reason = "OK";
  entry->head_lines = "ETag: \"v1\"\r\n";
  entry->etag = "\"v1\"";
  entry->body = "stored body";
  entry->stored_at = bench.context.nanos();
  entry->fresh_until = entry->stored_at + std::chrono::nanoseconds(fresh).count();
  entry->stale_until = entry->fresh_until + std::chrono::nanoseconds(60s).count();
  REQUIRE(bench.runtime().cache()->insert(entry));
}

}  // namespace

TEST_CASE("cache stage: a fresh entry answers, and a matching validator gets 304") {
  StageBench bench(oneRoute(kCached, "", kCacheTop));
  store(bench, 5s);
  FakeClient client;
  auto hit = bench.routed(client, kGet);
  bench.context.time += 2s;
  CHECK(hit->cache.onRequest(*hit) == StageResult::Answered);
  REQUIRE(client.sent.size() == 1);
  CHECK(client.sent[0].from_cache);
  CHECK(client.sent[0].status == 200);
  CHECK(client.sent[0].body == "stored body");
  CHECK(contains(client.sent[0].extras, "X-Cache: HIT\r\n"));
  CHECK(contains(client.sent[0].extras, "Age: 2\r\n"));
  CHECK(bench.context.connects.empty());

  auto revalidate =
      bench.routed(client, "GET /a HTTP/1.1\r\nHost: example.com\r\nIf-None-Match: \"v1\"\r\n\r\n");
  CHECK(revalidate->cache.onRequest(*revalidate) == StageResult::Answered);
  REQUIRE(client.sent.size() == 2);
  CHECK(client.sent[1].status == 304);
  CHECK(client.sent[1].body.empty());
}

TEST_CASE("cache stage: requests for an entry being filled wait for the fill") {
  StageBench bench(oneRoute(kCached, "", kCacheTop));
  FakeClient leader_client, follower_client;
  auto leader = bench.routed(leader_client, kGet);
  auto follower = bench.routed(follower_client, kGet);
  follower->upstream.choosePool(*follower);  // as the walk does before the cache
  CHECK(leader->cache.onRequest(*leader) == StageResult::Continue);
  CHECK(contains(leader->responseExtras(), "X-Cache: MISS\r\n"));
  CHECK(follower->cache.onRequest(*follower) == StageResult::Waiting);
  CHECK(follower->waiting());

  // The leader gives up (its server failed): the follower makes its own attempt.
  leader->release();
  CHECK(follower_client.wakes == 0);
  bench.context.runTasks();
  CHECK_FALSE(follower->waiting());
  CHECK(follower_client.wakes == 1);
  CHECK(bench.context.connects.size() == 2);  // the pool's two servers, both refused
  REQUIRE(follower_client.sent.size() == 1);
  CHECK(follower_client.sent[0].status == 502);
  CHECK(follower_client.sent[0].cause == LocalCause::ConnectFailed);
}

TEST_CASE("cache stage: an expired entry within its stale time answers for a failed pool") {
  StageBench bench(oneRoute(kCached, "", kCacheTop));
  store(bench, 5s);
  bench.context.time += 10s;
  FakeClient client;
  auto exchange = bench.routed(client, kGet);
  exchange->upstream.choosePool(*exchange);
  CHECK(exchange->cache.onRequest(*exchange) == StageResult::Continue);
  exchange->answer(LocalCause::ConnectFailed, "no server");
  REQUIRE(client.sent.size() == 1);
  CHECK(client.sent[0].status == 200);
  CHECK(contains(client.sent[0].extras, "X-Cache: STALE\r\n"));

  // A refusal of the request itself is not the pool's failure: no stale answer.
  FakeClient other;
  auto refused = bench.routed(other, kGet);
  CHECK(refused->cache.onRequest(*refused) == StageResult::Continue);
  refused->answer(LocalCause::BadRequest, "bad");
  REQUIRE(other.sent.size() == 1);
  CHECK(other.sent[0].status == 400);
}

TEST_CASE("cache stage: requests with a body or another method bypass it") {
  StageBench bench(oneRoute(kCached, "", kCacheTop));
  store(bench, 5s);
  FakeClient client;
  auto post =
      bench.routed(client, "POST /a HTTP/1.1\r\nHost: example.com\r\nContent-Length: 1\r\n\r\n");
  CHECK(post->cache.onRequest(*post) == StageResult::Continue);
  CHECK(contains(post->responseExtras(), "X-Cache: BYPASS\r\n"));
  CHECK(client.sent.empty());
}

namespace {

const std::string kLimited =
    "    max_active_requests: 1\n    queue:\n      size: 1\n      timeout: 2s\n";

}  // namespace

TEST_CASE("admission stage: one slot, one place in the queue, then shed") {
  StageBench bench(oneRoute("", kLimited));
  const auto& queue = *bench.pool(0).admission;
  FakeClient first_client, second_client, third_client;
  auto first = bench.routed(first_client, kGet);
  first->upstream.choosePool(*first);
  CHECK(first->admission.onRequest(*first) == StageResult::Continue);
  CHECK(queue.active() == 1);

  auto second = bench.routed(second_client, kGet);
  second->upstream.choosePool(*second);
  CHECK(second->admission.onRequest(*second) == StageResult::Waiting);
  CHECK(second_client.wait == 2000ms);

  auto third = bench.routed(third_client, kGet);
  third->upstream.choosePool(*third);
  CHECK(third->admission.onRequest(*third) == StageResult::Answered);
  REQUIRE(third_client.sent.size() == 1);
  CHECK(third_client.sent[0].status == 503);
  CHECK(third_client.sent[0].cause == LocalCause::QueueFull);
  CHECK(contains(third_client.sent[0].extras, "Retry-After: 1\r\n"));

  // The first request ends: its slot goes to the second, which goes on upstream.
  first->release();
  bench.context.runTasks();
  CHECK_FALSE(second_client.wait);
  CHECK(second_client.wakes == 1);
  CHECK_FALSE(bench.context.connects.empty());
  // Its connects were refused and its 502 gave the slot back.
  REQUIRE(second_client.sent.size() == 1);
  CHECK(second_client.sent[0].cause == LocalCause::ConnectFailed);
  CHECK(queue.active() == 0);
  CHECK(queue.waiting() == 0);
}

TEST_CASE("admission stage: a wait that times out is shed and leaves the queue") {
  StageBench bench(oneRoute("", kLimited));
  const auto& queue = *bench.pool(0).admission;
  FakeClient holder_client, waiter_client;
  auto holder = bench.routed(holder_client, kGet);
  holder->upstream.choosePool(*holder);
  REQUIRE(holder->admission.onRequest(*holder) == StageResult::Continue);
  auto waiter = bench.routed(waiter_client, kGet);
  waiter->upstream.choosePool(*waiter);
  REQUIRE(waiter->admission.onRequest(*waiter) == StageResult::Waiting);

  waiter->onWaitTimeout();
  REQUIRE(waiter_client.sent.size() == 1);
  CHECK(waiter_client.sent[0].status == 503);
  CHECK(waiter_client.sent[0].cause == LocalCause::QueueTimeout);
  CHECK(contains(waiter_client.sent[0].body, "had no free slot within 2s"));
  CHECK(queue.waiting() == 0);

  // A decision that comes after the wait was settled is ignored.
  holder->release();
  bench.context.runTasks();
  CHECK(waiter_client.sent.size() == 1);
  CHECK(queue.active() == 0);
}

TEST_CASE("admission stage: a pool without a healthy server sheds to the route's fallback") {
  StageBench bench(
      oneRoute("        fallback:\n          status: 503\n          body: busy\n"
               "          content_type: text/plain\n",
               kLimited));
  for (const auto& server : bench.pool(0).servers) server->healthy = false;
  FakeClient client;
  auto exchange = bench.routed(client, kGet);
  exchange->upstream.choosePool(*exchange);
  CHECK(exchange->admission.onRequest(*exchange) == StageResult::Answered);
  REQUIRE(client.sent.size() == 1);
  CHECK(client.sent[0].body == "busy");
  CHECK(client.sent[0].cause == LocalCause::NoHealthyServer);
  CHECK(bench.pool(0).admission->active() == 0);
}

TEST_CASE("upstream stage: refused connects eject each server once, then 502") {
  StageBench bench(oneRoute("", "    retries: 1\n"));
  FakeClient client;
  auto exchange = bench.routed(client, kGet);
  exchange->upstream.choosePool(*exchange);
  exchange->upstream.onRequest(*exchange);
  CHECK(bench.context.connects.size() == 2);
  CHECK(bench.context.connects[0] != bench.context.connects[1]);
  for (const auto& server : bench.pool(0).servers) CHECK_FALSE(server->healthy.load());
  REQUIRE(client.sent.size() == 1);
  CHECK(client.sent[0].status == 502);
  CHECK(client.sent[0].cause == LocalCause::ConnectFailed);
  CHECK(client.done == 1);
  CHECK_FALSE(exchange->upstream.active());
}

TEST_CASE("upstream stage: a split sends the users of a pool that is down to the others") {
  StageBench bench(
      "listeners:\n  - name: public\n    listen: 127.0.0.1:8080\n    routes:\n"
      "      - split:\n          pools:\n            - pool: main\n              weight: 1\n"
      "            - pool: canary\n              weight: 99\n"
      "pools:\n  main:\n    servers:\n      - address: 127.0.0.1:9001\n"
      "  canary:\n    servers:\n      - address: 127.0.0.1:9002\n");
  const PoolRuntime& main = bench.pool(0);
  const PoolRuntime& canary = bench.pool(1);
  REQUIRE(canary.config->name == "canary");
  canary.servers[0]->healthy = false;
  FakeClient client;
  for (int i = 0; i < 20; ++i) {
    auto exchange = bench.routed(client, kGet);
    exchange->upstream.choosePool(*exchange);
    CHECK(exchange->upstream.pool() == &main);
  }
}

TEST_CASE("exchange: the stages run in order and a refusal stops the walk") {
  StageBench bench(oneRoute(
      "        rate_limit:\n          key: client_ip\n          rate: 1/m\n          burst: 1\n",
      kLimited));
  FakeClient client;
  auto allowed = bench.routed(client, kGet);
  allowed->runStages(Exchange::Stage::RateLimit);
  // Through the rate limit and admission to the servers (both refused).
  CHECK(bench.context.connects.size() == 2);
  REQUIRE(client.sent.size() == 1);
  CHECK(client.sent[0].cause == LocalCause::ConnectFailed);
  CHECK(bench.pool(0).admission->active() == 0);  // released on the way out

  auto limited = bench.routed(client, kGet);
  limited->runStages(Exchange::Stage::RateLimit);
  REQUIRE(client.sent.size() == 2);
  CHECK(client.sent[1].status == 429);
  CHECK(bench.context.connects.size() == 2);  // no stage after the limit ran
  CHECK(bench.pool(0).admission->active() == 0);
}
