#pragma once
// A worker's connection to the Redis server that holds cluster-scope rate
// limit buckets (`cluster.redis`), through hiredis on the worker's own event
// loop: one bucket decision is one EVALSHA of a small token-bucket script,
// answered without blocking. A decision that takes longer than
// cluster.timeout, or comes while Redis is unreachable, is not waited for:
// the caller decides with its local bucket. While unreachable, the client
// reconnects in the background with back-off. Worker-thread only.

#include <event2/event.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "conf/config.h"
#include "limits/token_bucket.h"
#include "observe/metrics.h"

struct redisAsyncContext;

namespace crest::proxy {

// What the workers' clients share: whether Redis was reachable when last
// seen (so that a change is logged once, not once per worker).
struct ClusterStatus {
  std::atomic<bool> reachable{true};
};

class ClusterClient {
 public:
  // The bucket's answer; `answered` false when the caller must decide alone
  // (timeout, error, Redis unreachable).
  using Done = std::function<void(bool answered, const limits::RateDecision& decision)>;

  ClusterClient(event_base* base, const conf::Cluster& config, ClusterStatus& status,
                observe::Metrics::ClusterCells& calls);
  ~ClusterClient();
  ClusterClient(const ClusterClient&) = delete;
  ClusterClient& operator=(const ClusterClient&) = delete;

  const conf::Cluster& config() const { return config_; }
  // Whether a decision may be asked for now; when not, decide locally.
  bool ready() const { return state_ == State::Ready; }
  // Takes a token from the shared bucket `key` (the prefix is added here).
  // `done` runs once, later, on this thread. Only when ready().
  void take(const std::string& key, const limits::BucketSpec& spec, Done done);
  // A local decision made because Redis could not be asked: counted.
  void countUnasked() { calls_.error.add(); }

 private:
  enum class State { Connecting, Loading, Ready, Down };
  struct Call;
  static void onConnect(const redisAsyncContext* c, int status);
  static void onDisconnect(const redisAsyncContext* c, int status);
  static void onScriptLoaded(redisAsyncContext* c, void* reply, void* arg);
  static void onReply(redisAsyncContext* c, void* reply, void* arg);
  static void onCallTimeout(evutil_socket_t, short, void* arg);
  static void onReconnectTimer(evutil_socket_t, short, void* arg);
  void connect();
  // The connection is gone or unusable: try again after the back-off.
  void lost(const std::string& why);
  void setReachable(bool reachable, const std::string& why);

  event_base* base_;
  conf::Cluster config_;
  ClusterStatus& status_;
  observe::Metrics::ClusterCells& calls_;
  redisAsyncContext* context_ = nullptr;
  State state_ = State::Down;
  std::string sha_;  // of the script, once loaded
  event* reconnect_timer_ = nullptr;
  std::chrono::milliseconds backoff_{100};
};

}  // namespace crest::proxy
