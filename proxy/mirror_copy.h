#pragma once
// One copy of a request on its way to a mirror pool's server: it is sent
// whole (head and body), its response read to the end and dropped, and the
// connection kept for reuse when that is safe. Nothing of it reaches the
// client: the worker owns it, and it ends on its own, counted in
// crest_mirror_requests_total. Worker-thread only.

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "conf/config.h"
#include "http/body_encoder.h"
#include "http/http1_parser.h"
#include "observe/metrics.h"
#include "proxy/upstream_connection.h"

namespace crest::proxy {

class ExchangeContext;

class MirrorCopy final : public UpstreamConnection::Handler {
 public:
  // `request`: the head and body as they go to the server. `done` runs when
  // it ends (the owner deletes it then).
  MirrorCopy(ExchangeContext& context, std::shared_ptr<UpstreamServer> server,
             const conf::UpstreamTimeouts& timeouts, std::string request, observe::PoolCells* cells,
             std::function<void(MirrorCopy*)> done);
  ~MirrorCopy() override;
  void start();

  void onUpstreamEvent() override;
  void onUpstreamTimeout() override;

 private:
  void finish(bool answered);

  ExchangeContext& context_;
  std::shared_ptr<UpstreamServer> server_;
  conf::UpstreamTimeouts timeouts_;
  std::string request_;
  observe::PoolCells* cells_;
  std::function<void(MirrorCopy*)> done_;
  std::unique_ptr<UpstreamConnection> connection_;
  http::Http1Parser parser_{http::Http1Parser::Kind::Response, http::ParserLimits{}};
  evbuffer* sink_;  // the response body, dropped as it comes
  http::BodyEncoder body_;
  bool timer_started_ = false;
};

}  // namespace crest::proxy
