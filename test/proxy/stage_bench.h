#pragma once
// Stages under test: a configuration's runtime, exchanges on its first
// listener, and a fake client and context in place of the socket and the
// worker. The context's clock moves only when a test moves it; tasks that
// waiters post run when a test runs them; every connect is refused at once,
// so no test opens a socket.

#include <event2/buffer.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "conf/loader.h"
#include "proxy/exchange.h"
#include "proxy/runtime.h"
#include "proxy/upstream_connection.h"

namespace crest::proxy::testing {

class FakeContext final : public ExchangeContext {
 public:
  std::chrono::steady_clock::time_point time{std::chrono::hours(1)};
  std::vector<std::function<void()>> tasks;
  std::vector<std::string> connects;  // the servers asked for, in order

  std::chrono::steady_clock::time_point now() override { return time; }
  int64_t nanos() override {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(time.time_since_epoch()).count();
  }
  uint64_t random() override { return ++random_; }
  void post(std::function<void()> task) override { tasks.push_back(std::move(task)); }
  void newRequestId(std::string& id) override { id = "request-" + std::to_string(++ids_); }
  observe::AccessLogWriter* accessLog() override { return nullptr; }
  std::unique_ptr<UpstreamConnection> connectTo(const std::shared_ptr<UpstreamServer>& server,
                                                const conf::UpstreamTimeouts&, bool,
                                                int& connect_errno) override {
    connects.push_back(server->address);
    connect_errno = ECONNREFUSED;
    return nullptr;
  }
  void keepIdle(std::unique_ptr<UpstreamConnection>, std::chrono::milliseconds) override {}
  io::ReadScratch& readScratch() override { return scratch_; }
  ClusterClient* cluster() override { return nullptr; }
  void mirror(std::shared_ptr<UpstreamServer> server, const conf::UpstreamTimeouts&,
              std::string request, observe::PoolCells*) override {
    mirrors.push_back({server->address, std::move(request)});
  }
  std::vector<std::pair<std::string, std::string>> mirrors;  // server, request

  void runTasks() {
    auto now_due = std::move(tasks);
    tasks.clear();
    for (auto& task : now_due) task();
  }

 private:
  uint64_t random_ = 0;
  uint64_t ids_ = 0;
  io::ReadScratch scratch_;
};

// What the exchange sent its client.
struct Sent {
  int status = 0;
  std::string body;
  std::string extras;  // the header lines the stages added
  LocalCause cause = LocalCause::None;
  bool from_cache = false;
};

class FakeClient final : public ExchangeClient {
 public:
  std::vector<Sent> sent;
  int done = 0;
  std::vector<LocalCause> resets;
  std::optional<std::chrono::milliseconds> wait;
  int wakes = 0;

  http::BodyEncoder sendResponseHead(const http::MessageHead& response,
                                     std::string_view extras) override {
    sent.push_back({response.status, "", std::string(extras)});
    return http::BodyEncoder();
  }
  void sendStoredResponse(int status, std::string_view, std::string_view,
                          std::shared_ptr<const cache::StoredResponse> entry, bool with_body,
                          std::string_view extras) override {
    sent.push_back(
        {status, with_body ? entry->body : "", std::string(extras), LocalCause::None, true});
  }
  void sendLocalResponse(LocalCause cause, int status, std::string_view, std::string_view body,
                         std::string_view extras) override {
    sent.push_back({status, std::string(body), std::string(extras), cause});
  }
  void sendContinue() override {}
  size_t unsentBytes() const override { return 0; }
  void exchangeDone() override { ++done; }
  void reset(LocalCause cause) override { resets.push_back(cause); }
  void waitFor(std::chrono::milliseconds timeout) override { wait = timeout; }
  void waitOver() override { wait.reset(); }
  void wake() override { ++wakes; }
};

class StageBench {
 public:
  explicit StageBench(const std::string& yaml) {
    auto loaded = conf::loadConfigText(yaml, "crest.yaml", "/tmp");
    INFO((loaded.errors.empty() ? "" : loaded.errors[0].format()));
    REQUIRE(loaded.config);
    std::vector<conf::ConfigError> errors;
    runtime_ = Runtime::build(loaded.config, nullptr, 1, metrics_,
                              std::make_shared<tls::TicketKeys>(), errors);
    REQUIRE(errors.empty());
    sockaddr_storage peer{};
    REQUIRE(io::parseAddress("127.0.0.7", peer));
    info_.peer.set(peer);
    info_.peer.hash = 7;
    info_.listener_metrics = metrics_.listenerCells(runtime_->listeners()[0].config->name);
  }

  // An exchange of `client` whose request head `head` has arrived, routed
  // (by its Host header) but not yet through any stage.
  std::unique_ptr<Exchange> routed(FakeClient& client, const std::string& head) {
    auto exchange = std::make_unique<Exchange>(http::ParserLimits{});
    exchange->bind(client, info_, context, *runtime_, &runtime_->listeners()[0]);
    evbuffer* in = evbuffer_new();
    evbuffer_add(in, head.data(), head.size());
    http::BodyEncoder none;
    auto event = exchange->request_parser.parse(in, none, 0);
    evbuffer_free(in);
    REQUIRE(event == http::Http1Parser::Event::Head);
    exchange->begin();
    exchange->target = exchange->request().target;
    const std::string* host = exchange->request().find(http::HeaderName::Host);
    REQUIRE(exchange->matchRoute(host ? hostWithoutPort(*host) : ""));
    return exchange;
  }

  const Runtime& runtime() const { return *runtime_; }
  const PoolRuntime& pool(size_t index) const { return runtime_->pools()[index]; }
  FakeContext context;

 private:
  observe::Metrics metrics_;
  std::shared_ptr<const Runtime> runtime_;
  ClientInfo info_;
};

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace crest::proxy::testing
