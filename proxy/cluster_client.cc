#include "proxy/cluster_client.h"

#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <cstdio>

#include "observe/log.h"

namespace crest::proxy {

namespace log = observe::log;

namespace {

// One token bucket per key, kept as the time it is full again (ms, Redis's
// own clock, so that instances with skewed clocks share one bucket): the
// same arithmetic as limits::TokenBucket. The key expires once it would be
// full anyway. Returns allowed, remaining, reset and retry-after seconds.
constexpr const char* kTokenBucketScript = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = 1000 / tonumber(ARGV[1])
local capacity = interval * tonumber(ARGV[2])
local full_at = tonumber(redis.call('GET', KEYS[1]) or now)
if full_at < now then full_at = now end
local allowed = full_at + interval - now <= capacity
local retry = 0
if allowed then
  full_at = full_at + interval
  redis.call('SET', KEYS[1], string.format('%.3f', full_at), 'PX', math.ceil(full_at - now) + 1000)
else
  retry = math.max(1, math.ceil((full_at + interval - now - capacity) / 1000))
end
local remaining = math.floor((capacity - math.max(0, full_at - now)) / interval)
return {allowed and 1 or 0, remaining, math.ceil(math.max(0, full_at - now) / 1000), retry}
)lua";

constexpr std::chrono::milliseconds kMaxBackoff{5000};

timeval toTimeval(std::chrono::milliseconds d) {
  return {static_cast<time_t>(d.count() / 1000), static_cast<suseconds_t>(d.count() % 1000 * 1000)};
}

}  // namespace

// One decision asked of Redis. Its reply callback always comes (hiredis
// calls it with no reply when the connection ends) and deletes it; the
// timer may have answered the caller before.
struct ClusterClient::Call {
  Done done;
  observe::Metrics::ClusterCells* calls = nullptr;
  uint32_t burst = 0;
  event* timer = nullptr;
  bool answered = false;
  bool failed = false;  // could not be sent: the timer answers at once
  ~Call() {
    if (timer) event_free(timer);
  }
};

ClusterClient::ClusterClient(event_base* base, const conf::Cluster& config, ClusterStatus& status,
                             observe::Metrics::ClusterCells& calls)
    : base_(base), config_(config), status_(status), calls_(calls) {
  reconnect_timer_ = evtimer_new(base_, &ClusterClient::onReconnectTimer, this);
  connect();
}

ClusterClient::~ClusterClient() {
  if (context_) {
    // Pending calls are answered (no reply) and deleted by the free; this
    // client is gone for its callbacks.
    context_->data = nullptr;
    redisAsyncFree(context_);
  }
  event_free(reconnect_timer_);
}

void ClusterClient::connect() {
  state_ = State::Connecting;
  context_ = config_.unix_path.empty()
                 ? redisAsyncConnect(config_.redis.host.c_str(), config_.redis.port)
                 : redisAsyncConnectUnix(config_.unix_path.c_str());
  if (context_ == nullptr || context_->err) {
    std::string why = context_ ? context_->errstr : "out of memory";
    if (context_) redisAsyncFree(context_);
    context_ = nullptr;
    lost(why);
    return;
  }
  context_->data = this;
  redisLibeventAttach(context_, base_);
  redisAsyncSetConnectCallback(context_, &ClusterClient::onConnect);
  redisAsyncSetDisconnectCallback(context_, &ClusterClient::onDisconnect);
}

void ClusterClient::onConnect(const redisAsyncContext* c, int status) {
  auto* self = static_cast<ClusterClient*>(c->data);
  if (self == nullptr) return;
  if (status != REDIS_OK) {
    // hiredis frees a context whose connect failed.
    std::string why = c->errstr;
    self->context_ = nullptr;
    self->lost(why);
    return;
  }
  self->state_ = State::Loading;
  redisAsyncCommand(self->context_, &ClusterClient::onScriptLoaded, self, "SCRIPT LOAD %s",
                    kTokenBucketScript);
}

void ClusterClient::onScriptLoaded(redisAsyncContext* c, void* r, void*) {
  auto* self = static_cast<ClusterClient*>(c->data);
  auto* reply = static_cast<redisReply*>(r);
  if (self == nullptr || reply == nullptr) return;  // the connection ended: onDisconnect follows
  if (reply->type != REDIS_REPLY_STRING) {
    std::string why = reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply";
    redisAsyncDisconnect(c);  // onDisconnect retries
    self->setReachable(false, "SCRIPT LOAD failed: " + why);
    return;
  }
  self->sha_.assign(reply->str, reply->len);
  self->state_ = State::Ready;
  self->backoff_ = std::chrono::milliseconds(100);
  self->setReachable(true, "");
}

void ClusterClient::onDisconnect(const redisAsyncContext* c, int) {
  auto* self = static_cast<ClusterClient*>(c->data);
  if (self == nullptr) return;
  std::string why = c->err ? c->errstr : "connection closed";
  self->context_ = nullptr;  // hiredis frees it after this callback
  self->lost(why);
}

void ClusterClient::lost(const std::string& why) {
  state_ = State::Down;
  setReachable(false, why);
  timeval tv = toTimeval(backoff_);
  evtimer_add(reconnect_timer_, &tv);
  backoff_ = std::min(backoff_ * 2, kMaxBackoff);
}

void ClusterClient::onReconnectTimer(evutil_socket_t, short, void* arg) {
  static_cast<ClusterClient*>(arg)->connect();
}

void ClusterClient::setReachable(bool reachable, const std::string& why) {
  if (status_.reachable.exchange(reachable) == reachable) return;
  if (reachable) {
    log::info("cluster: redis " + config_.redis_text +
              " reachable: cluster-scope rate limits are shared again");
  } else {
    log::warn("cluster: redis " + config_.redis_text + " unreachable (" + why +
              "): cluster-scope rate limits decide per instance until it answers");
  }
}

void ClusterClient::take(const std::string& key, const limits::BucketSpec& spec, Done done) {
  auto* call = new Call;
  call->done = std::move(done);
  call->calls = &calls_;
  call->burst = spec.burst;
  call->timer = evtimer_new(base_, &ClusterClient::onCallTimeout, call);
  char rate[32];
  std::snprintf(rate, sizeof rate, "%.6f", spec.tokens_per_second);
  std::string full_key = config_.key_prefix + key;
  if (redisAsyncCommand(context_, &ClusterClient::onReply, call, "EVALSHA %s 1 %s %s %u",
                        sha_.c_str(), full_key.c_str(), rate, spec.burst) != REDIS_OK) {
    // Never sent, so no reply will delete it: the timer answers and deletes it.
    call->failed = true;
    event_active(call->timer, EV_TIMEOUT, 0);
    return;
  }
  timeval tv = toTimeval(config_.timeout);
  evtimer_add(call->timer, &tv);
}

void ClusterClient::onCallTimeout(evutil_socket_t, short, void* arg) {
  auto* call = static_cast<Call*>(arg);
  if (call->answered) return;
  call->answered = true;
  (call->failed ? call->calls->error : call->calls->timeout).add();
  call->done(false, {});
  if (call->failed) delete call;
}

void ClusterClient::onReply(redisAsyncContext* c, void* r, void* arg) {
  std::unique_ptr<Call> call(static_cast<Call*>(arg));
  auto* reply = static_cast<redisReply*>(r);
  bool good = reply != nullptr && reply->type == REDIS_REPLY_ARRAY && reply->elements == 4;
  for (size_t i = 0; good && i < 4; ++i) good = reply->element[i]->type == REDIS_REPLY_INTEGER;
  if (reply != nullptr && reply->type == REDIS_REPLY_ERROR &&
      std::string_view(reply->str, reply->len).rfind("NOSCRIPT", 0) == 0) {
    // Redis lost its scripts (a restart kept the connection's address):
    // start over, the script is loaded on the next connect.
    if (auto* self = static_cast<ClusterClient*>(c->data)) {
      self->state_ = State::Loading;
      redisAsyncDisconnect(c);
    }
  }
  if (call->answered) return;
  call->answered = true;
  if (!good) {
    call->calls->error.add();
    call->done(false, {});
    return;
  }
  limits::RateDecision d;
  d.allowed = reply->element[0]->integer == 1;
  d.limit = call->burst;
  d.remaining = static_cast<uint32_t>(std::max<long long>(0, reply->element[1]->integer));
  d.reset_seconds = static_cast<uint32_t>(std::max<long long>(0, reply->element[2]->integer));
  d.retry_after = static_cast<uint32_t>(std::max<long long>(0, reply->element[3]->integer));
  call->calls->ok.add();
  call->done(true, d);
}

}  // namespace crest::proxy
