// libFuzzer target: bytes from an HTTP/2 client (its preface and frames)
// through crest's session code, as a connection feeds them: the first byte
// chooses where the input is split across reads. Streams become exchanges on
// a runtime whose one pool has no healthy server, so every request that
// starts is answered (503) without a socket; what the session writes is read
// and dropped.

#include <event2/buffer.h>

#include <cstdint>
#include <memory>

#include "conf/loader.h"
#include "proxy/http2_session.h"
#include "proxy/worker_context.h"

using namespace crest;
using namespace crest::proxy;

namespace {

constexpr const char* kConfig =
    "listeners:\n  - name: public\n    listen: 127.0.0.1:8080\n    routes:\n"
    "      - match: {path_prefix: /cached/}\n        pool: web\n        cache: {ttl: 5s}\n"
    "      - match: {path_prefix: /limited/}\n        pool: web\n"
    "        rate_limit: {key: client_ip, rate: 1/s, burst: 1}\n"
    "      - pool: web\n"
    "cache: {max_size: 1MiB}\n"
    "limits: {max_header_bytes: 4096, max_headers: 50}\n"
    "pools:\n  web:\n    max_active_requests: 2\n    queue: {size: 2, timeout: 1s}\n"
    "    servers:\n      - address: 127.0.0.1:9\n";

class FuzzCarrier final : public Http2Carrier {
 public:
  FuzzCarrier() {
    auto loaded = conf::loadConfigText(kConfig, "fuzz.yaml", "/tmp");
    std::vector<conf::ConfigError> errors;
    runtime_ = Runtime::build(loaded.config, nullptr, 1, metrics_,
                              std::make_shared<tls::TicketKeys>(), errors);
    for (const auto& server : runtime_->pools()[0].servers) server->healthy = false;
    sockaddr_storage peer{};
    io::parseAddress("192.0.2.1", peer);
    info_.peer.set(peer);
    info_.listener_metrics = metrics_.listenerCells("public");
    budget_.limit = 100;
    worker_ = std::make_unique<WorkerContext>(runtime_, -1, budget_);
  }
  void wakeConnection() override {}
  const ClientInfo& clientInfo() const override { return info_; }
  const Runtime& runtime() const override { return *runtime_; }
  const ListenerRuntime* listenerRuntime() const override { return &runtime_->listeners()[0]; }
  WorkerContext& worker() { return *worker_; }

 private:
  observe::Metrics metrics_;
  std::shared_ptr<const Runtime> runtime_;
  ClientInfo info_;
  ConnectionBudget budget_;
  std::unique_ptr<WorkerContext> worker_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static FuzzCarrier carrier;
  if (size < 1) return 0;
  size_t step = 1 + data[0] % 128;
  conf::Http2Config config;
  config.max_concurrent_streams = 8;
  evbuffer* in = evbuffer_new();
  evbuffer* out = evbuffer_new();
  {
    Http2Session session(carrier.worker(), carrier, config);
    for (size_t at = 1; at < size && !session.finished(); at += step) {
      evbuffer_add(in, data + at, std::min(step, size - at));
      session.pump(in, out, 1 << 20);
      evbuffer_drain(out, evbuffer_get_length(out));
    }
  }
  evbuffer_free(in);
  evbuffer_free(out);
  return 0;
}
