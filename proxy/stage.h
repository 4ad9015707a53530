#pragma once
// What the stages of an exchange share: how a stage ends its turn, and what
// they need from the thread they run on. The worker provides the context;
// stage tests provide a fake one with a clock they move themselves.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "conf/config.h"
#include "io/socket_io.h"
#include "observe/access_log.h"
#include "observe/metrics.h"

namespace crest::proxy {

struct UpstreamServer;
class UpstreamConnection;
class ClusterClient;

// How a stage ends its turn on a request.
enum class StageResult {
  Continue,  // the next stage runs
  Answered,  // the stage answered the request (or its answer is on its way)
  Waiting,   // the stage waits for something (a queue slot, another request's
             // cache fill) and resumes the walk itself when it comes
};

// What stages need from the thread they run on. Worker-thread only, except post().
class ExchangeContext {
 public:
  virtual ~ExchangeContext() = default;
  // The time of this loop turn.
  virtual std::chrono::steady_clock::time_point now() = 0;
  // The steady clock in nanoseconds, read afresh: what workers share (token
  // buckets, cache lifetimes) compares it across threads.
  virtual int64_t nanos() = 0;
  virtual uint64_t random() = 0;
  // Runs `task` on this thread's loop, soon. Any thread.
  virtual void post(std::function<void()> task) = 0;
  // Writes a fresh X-Request-Id over `id`.
  virtual void newRequestId(std::string& id) = 0;
  // Null when access logging is off.
  virtual observe::AccessLogWriter* accessLog() = 0;
  // A connection to `server`: a kept-alive idle one (unless `fresh`), or a
  // new one being connected; null when the connect failed at once (why in
  // `connect_errno`).
  virtual std::unique_ptr<UpstreamConnection> connectTo(
      const std::shared_ptr<UpstreamServer>& server, const conf::UpstreamTimeouts& timeouts,
      bool fresh, int& connect_errno) = 0;
  // Keeps a connection whose exchange ended cleanly, for the next request to the server.
  virtual void keepIdle(std::unique_ptr<UpstreamConnection> connection,
                        std::chrono::milliseconds idle_timeout) = 0;
  // Where small reads land before they are parsed.
  virtual io::ReadScratch& readScratch() = 0;
  // The connection to cluster.redis, for cluster-scope rate limits; null
  // without a cluster section.
  virtual ClusterClient* cluster() = 0;
  // Sends `request` (head and body) to `server` of a mirror pool and drops
  // its answer, on its own: nothing waits for it (MirrorCopy).
  virtual void mirror(std::shared_ptr<UpstreamServer> server,
                      const conf::UpstreamTimeouts& timeouts, std::string request,
                      observe::PoolCells* cells) = 0;
};

// True for `percent` of the calls (0-100, fractions to a ten-thousandth):
// the share a route's fault or mirror applies to.
inline bool chance(ExchangeContext& context, double percent) {
  return percent > 0 && static_cast<double>(context.random() % 1000000) < percent * 10000;
}

}  // namespace crest::proxy
