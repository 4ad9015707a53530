// pick() of each balancing policy for pools of 3, 30 and 300 servers.
// Built only when Google Benchmark is installed; run by scripts/bench-balancers.

#include <benchmark/benchmark.h>

#include <deque>
#include <string>
#include <vector>

#include "balancer/balancer.h"

namespace {

using crest::balancer::Member;
using crest::balancer::Server;

void pickBenchmark(benchmark::State& state, const char* policy) {
  std::deque<Server> servers;
  std::vector<Member> members;
  for (int i = 0; i < state.range(0); ++i) {
    servers.emplace_back("10.0.0." + std::to_string(i) + ":8080");
    members.push_back({&servers.back(), static_cast<uint32_t>(1 + i % 3)});
  }
  auto balancer = crest::balancer::makeBalancer(policy, members);
  crest::balancer::TriedSet tried;
  uint64_t client = 0x9e3779b97f4a7c15ull;
  for (auto _ : state) {
    client =
        client * 6364136223846793005ull + 1442695040888963407ull;  // a new client address each pick
    benchmark::DoNotOptimize(balancer->pick({client}, tried));
  }
}

BENCHMARK_CAPTURE(pickBenchmark, round_robin, "round_robin")->Arg(3)->Arg(30)->Arg(300);
BENCHMARK_CAPTURE(pickBenchmark, least_conn, "least_conn")->Arg(3)->Arg(30)->Arg(300);
BENCHMARK_CAPTURE(pickBenchmark, ip_hash, "ip_hash")->Arg(3)->Arg(30)->Arg(300);

void ringBuild(benchmark::State& state) {
  std::deque<Server> servers;
  std::vector<Member> members;
  for (int i = 0; i < state.range(0); ++i) {
    servers.emplace_back("10.0.0." + std::to_string(i) + ":8080");
    members.push_back({&servers.back(), 1});
  }
  for (auto _ : state) benchmark::DoNotOptimize(crest::balancer::makeBalancer("ip_hash", members));
}
BENCHMARK(ringBuild)->Arg(100)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
