#include "proxy/worker_context.h"

#include <array>
#include <cstring>

#include "proxy/downstream_connection.h"

namespace crest::proxy {

WorkerContext::WorkerContext(std::shared_ptr<const Runtime> runtime, int access_log_fd,
                             ConnectionBudget& budget)
    : runtime_(std::move(runtime)),
      upstream_pool_(loop_),
      budget_(budget),
      random_(std::random_device{}()) {
  if (access_log_fd >= 0)
    access_log_ = std::make_unique<observe::AccessLogWriter>(loop_.base(), access_log_fd);
  tasks_event_ = event_new(loop_.base(), -1, EV_PERSIST, &WorkerContext::onTasks, this);
  event_add(tasks_event_, nullptr);
  cluster();  // before the loop runs: nothing else uses it yet
}

WorkerContext::~WorkerContext() {
  for (auto* c : std::vector<DownstreamConnection*>(connections_.begin(), connections_.end())) {
    delete c;
    budget_.give();
  }
  connections_.clear();
  mirrors_.clear();
  cluster_.reset();
  upstream_pool_.clear();
  access_log_.reset();
  event_free(tasks_event_);
}

ClusterClient* WorkerContext::cluster() {
  const auto& wanted = runtime_->config().cluster;
  if (!wanted) {
    cluster_.reset();
    return nullptr;
  }
  if (!cluster_ || !(cluster_->config() == *wanted)) {
    cluster_ = std::make_unique<ClusterClient>(loop_.base(), *wanted, runtime_->clusterStatus(),
                                               runtime_->clusterCalls());
  }
  return cluster_.get();
}

void WorkerContext::mirror(std::shared_ptr<UpstreamServer> server,
                           const conf::UpstreamTimeouts& timeouts, std::string request,
                           observe::PoolCells* cells) {
  auto finished = [this](MirrorCopy* done) {
    // Deleted on the next loop turn: this runs inside the copy's own callbacks.
    post([this, done] { mirrors_.erase(done); });
  };
  auto copy = std::make_unique<MirrorCopy>(*this, std::move(server), timeouts, std::move(request),
                                           cells, std::move(finished));
  MirrorCopy* started = copy.get();
  mirrors_.emplace(started, std::move(copy));
  started->start();
}

void WorkerContext::post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(tasks_mutex_);
    tasks_.push_back(std::move(task));
  }
  event_active(tasks_event_, EV_READ, 0);
}

void WorkerContext::onTasks(evutil_socket_t, short, void* arg) {
  static_cast<WorkerContext*>(arg)->runTasks();
}

void WorkerContext::runTasks() {
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard<std::mutex> lock(tasks_mutex_);
    tasks.swap(tasks_);
  }
  for (auto& t : tasks) t();
}

void WorkerContext::adopt(DownstreamConnection* conn) {
  connections_.insert(conn);
}

std::vector<DownstreamConnection*> WorkerContext::connectionsOf(const std::string* name) const {
  std::vector<DownstreamConnection*> out;
  for (auto* c : connections_) {
    if (name == nullptr || c->listener() == *name) out.push_back(c);
  }
  return out;
}

void WorkerContext::connectionClosed(DownstreamConnection* conn) {
  connections_.erase(conn);
  delete conn;
  budget_.give();
  exitWhenEmpty();
}

void WorkerContext::beginDraining() {
  draining_ = true;
  exitWhenEmpty();
}

void WorkerContext::exitWhenEmpty() {
  if (draining_ && connections_.empty()) event_base_loopbreak(loop_.base());
}

std::unique_ptr<Exchange> WorkerContext::takeExchange(http::ParserLimits request_limits) {
  Exchange* spare = spare_exchanges_.take();
  if (spare == nullptr) return std::make_unique<Exchange>(request_limits);
  spare->restart(request_limits);
  return std::unique_ptr<Exchange>(spare);
}

void WorkerContext::recycleExchange(std::unique_ptr<Exchange> exchange) {
  spare_exchanges_.give(exchange.release());
}

evbuffer* WorkerContext::takeBuffer() {
  evbuffer* spare = spare_buffers_.take();
  return spare != nullptr ? spare : evbuffer_new();
}

void WorkerContext::recycleBuffer(evbuffer* buffer) {
  // Idle connections give theirs back empty; a closed one may leave bytes.
  if (size_t left = evbuffer_get_length(buffer)) evbuffer_drain(buffer, left);
  spare_buffers_.give(buffer);
}

void WorkerContext::newRequestId(std::string& id) {
  // Two digits a byte of randomness, from a table of all 256 pairs.
  static constexpr auto kPairs = [] {
    constexpr char kHex[] = "0123456789abcdef";
    std::array<std::array<char, 2>, 256> pairs{};
    for (size_t b = 0; b < pairs.size(); ++b) pairs[b] = {kHex[b >> 4], kHex[b & 15]};
    return pairs;
  }();
  id.resize(32);
  char* out = id.data();
  for (int half = 0; half < 2; ++half) {
    uint64_t bits = random_();
    for (int i = 0; i < 8; ++i, bits >>= 8, out += 2)
      std::memcpy(out, kPairs[bits & 255].data(), 2);
  }
}

}  // namespace crest::proxy
