#pragma once
// The micro-cache of cached routes: answers fresh hits (a 304 when the
// validators match), lets one request fill an entry while the others for it
// wait (request coalescing), stores what the response head allows, and keeps
// an expired entry to answer when the pool fails (stale-if-error). Comes
// before admission: a hit needs no slot of the pool.

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "cache/response_cache.h"
#include "http/http_message.h"
#include "observe/metrics.h"
#include "proxy/stage.h"

namespace crest::proxy {

class Exchange;
class Waiter;

class CacheStage {
 public:
  // The route is known: every response of a cached route says what the
  // cache did (BYPASS until the lookup says otherwise). `host`: lower case, no port.
  void enterRoute(Exchange& exchange, std::string host);
  StageResult onRequest(Exchange& exchange);
  // Another request's fill ended: false unless `waiter` is this stage's wait.
  bool endWait(const Waiter& waiter);
  bool waiting() const { return fill_waiter_ != nullptr; }
  // The pool failed: answers with the expired entry while within its stale time.
  bool serveStale(Exchange& exchange);
  // Response hooks: the head decides whether the response is stored; its end stores it.
  void onResponseHead(Exchange& exchange, const http::MessageHead& response);
  void onResponseComplete(Exchange& exchange);
  // The X-Cache line of this response, empty for routes without a cache.
  std::string_view responseLine() const;
  const std::optional<observe::CacheResult>& result() const { return result_; }
  // Drops a response being stored and ends a fill this request leads or waits for.
  void release(Exchange& exchange);
  void reset();

 private:
  // Answers from a stored response (a HIT may become a 304).
  void serveStored(Exchange& exchange, std::shared_ptr<const cache::StoredResponse> entry,
                   observe::CacheResult result);
  void endFill(Exchange& exchange);

  std::optional<observe::CacheResult> result_;  // the X-Cache of this response
  std::string host_;                            // the key's host
  std::shared_ptr<Waiter> fill_waiter_;         // set while waiting for another request's fill
  bool coalesced_ = false;                      // waited for a fill once: no second wait
  bool leader_ = false;                         // fills the entry others wait for (endFill owed)
  // The response being stored (all but body and times), its lifetime and its body so far.
  std::shared_ptr<cache::StoredResponse> pending_;
  cache::Nanos pending_lifetime_ = 0;
  std::string pending_body_;
  // An expired entry that may still answer when the pool fails.
  std::shared_ptr<const cache::StoredResponse> stale_;
};

}  // namespace crest::proxy
