#include "proxy/local_answer.h"

#include <catch2/catch.hpp>
#include <set>
#include <string>

using namespace crest::proxy;

TEST_CASE("local answer: each cause has its status, its consequences and a name of its own") {
  CHECK(describe(LocalCause::BadRequest).status == 400);
  CHECK(describe(LocalCause::BadRequest).request_fault);
  CHECK(describe(LocalCause::HeadTimeout).status == 408);
  CHECK(describe(LocalCause::NoRoute).status == 404);
  CHECK_FALSE(describe(LocalCause::NoRoute).request_fault);  // the connection goes on
  CHECK_FALSE(describe(LocalCause::NoRoute).pool_failed);
  CHECK(describe(LocalCause::RateLimited).status == 429);
  CHECK_FALSE(describe(LocalCause::RateLimited).pool_failed);  // no stale answer for a refusal
  for (auto shed : {LocalCause::QueueFull, LocalCause::QueueTimeout, LocalCause::NoHealthyServer}) {
    CHECK(describe(shed).status == 503);
    CHECK(describe(shed).pool_failed);
  }
  CHECK(describe(LocalCause::ConnectFailed).status == 502);
  CHECK(describe(LocalCause::UpstreamClosed).status == 502);
  CHECK(describe(LocalCause::InvalidResponse).status == 502);
  CHECK(describe(LocalCause::UpstreamTimeout).status == 504);
  CHECK(describe(LocalCause::UpstreamTimeout).pool_failed);
  CHECK(std::string(describe(LocalCause::None).log_name) == "-");
  std::set<std::string> names;
  for (int c = 0; c <= static_cast<int>(LocalCause::ClientClosed); ++c) {
    names.insert(describe(static_cast<LocalCause>(c)).log_name);
  }
  CHECK(names.size() == static_cast<size_t>(LocalCause::ClientClosed) + 1);
}

TEST_CASE("local answer: the parser's refusals map to their causes") {
  CHECK(requestErrorCause(400) == LocalCause::BadRequest);
  CHECK(requestErrorCause(413) == LocalCause::BodyTooLarge);
  CHECK(requestErrorCause(414) == LocalCause::UriTooLong);
  CHECK(requestErrorCause(431) == LocalCause::HeadTooLarge);
  CHECK(describe(requestErrorCause(431)).status == 431);
  CHECK(describe(requestErrorCause(414)).status == 414);
  CHECK(describe(requestErrorCause(413)).status == 413);
}
