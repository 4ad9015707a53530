#include "proxy/upstream_pool.h"

#include <algorithm>

#include "proxy/upstream_connection.h"

namespace crest::proxy {

UpstreamPool::~UpstreamPool() {
  clear();
}

std::unique_ptr<UpstreamConnection> UpstreamPool::acquire(
    const std::shared_ptr<UpstreamServer>& server, const conf::UpstreamTimeouts& timeouts,
    bool fresh, int& connect_errno) {
  auto it = fresh ? idle_.end() : idle_.find(server.get());
  if (it != idle_.end() && !it->second.empty()) {
    auto conn = std::move(it->second.back());
    it->second.pop_back();
    conn->unpark();
    return conn;
  }
  auto conn = std::make_unique<UpstreamConnection>(*this, server);
  if (!conn->connect(timeouts.connect)) {
    connect_errno = conn->connectError();
    return nullptr;
  }
  return conn;
}

void UpstreamPool::release(std::unique_ptr<UpstreamConnection> conn,
                           std::chrono::milliseconds idle_timeout) {
  conn->parkIdle(idle_timeout);
  idle_[&conn->server()].push_back(std::move(conn));
}

void UpstreamPool::discard(UpstreamConnection* conn) {
  auto it = idle_.find(&conn->server());
  if (it == idle_.end()) return;
  auto& list = it->second;
  auto pos = std::find_if(list.begin(), list.end(), [&](const auto& c) { return c.get() == conn; });
  if (pos != list.end()) list.erase(pos);
  if (list.empty()) idle_.erase(it);
}

void UpstreamPool::clear() {
  idle_.clear();
}

}  // namespace crest::proxy
