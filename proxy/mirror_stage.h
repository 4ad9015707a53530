#pragma once
// A route's mirror: a share of its requests is copied to another pool, with
// X-Crest-Mirror: 1. The copy is chosen as the request leaves for its
// server (UpstreamStage calls onRequest), taps the request body up to
// max_body, and is sent when the exchange ends (release), whatever the
// primary's answer was, so that the client never waits on it; a request
// whose body was bigger or not read to its end is skipped.

#include <memory>
#include <string>

#include "http/http_message.h"

namespace crest::proxy {

class Exchange;
struct PoolRuntime;
struct UpstreamServer;

class MirrorStage {
 public:
  void onRequest(Exchange& exchange);
  void release(Exchange& exchange);

 private:
  bool chosen_ = false;
  http::Framing framing_ = http::Framing::None;
  const PoolRuntime* pool_ = nullptr;
  std::shared_ptr<UpstreamServer> server_;
  std::string head_;
  std::string body_;  // the request body's tap
};

}  // namespace crest::proxy
