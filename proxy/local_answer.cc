#include "proxy/local_answer.h"

#include <array>
#include <cstddef>

namespace crest::proxy {

namespace {

constexpr std::array<LocalCauseInfo, 20> kCauses = {{
    {0, false, false, "-"},
    {400, true, false, "bad_request"},
    {414, true, false, "uri_too_long"},
    {431, true, false, "head_too_large"},
    {413, true, false, "body_too_large"},
    {408, true, false, "head_timeout"},
    {404, false, false, "no_route"},
    {429, false, false, "rate_limited"},
    {503, false, true, "queue_full"},
    {503, false, true, "queue_timeout"},
    {503, false, true, "no_healthy_server"},
    {502, false, true, "connect_failed"},
    {502, false, true, "upstream_closed"},
    {504, false, true, "upstream_timeout"},
    {502, false, true, "invalid_response"},
    {0, false, false, "upstream_reset"},
    {0, false, false, "client_closed"},
    {0, false, false, "tunnel_idle"},
    {403, false, false, "access_denied"},
    {503, false, false, "fault_injected"},
}};
static_assert(kCauses.size() == static_cast<size_t>(LocalCause::FaultInjected) + 1);

}  // namespace

const LocalCauseInfo& describe(LocalCause cause) {
  return kCauses[static_cast<size_t>(cause)];
}

LocalCause requestErrorCause(int status) {
  switch (status) {
    case 413:
      return LocalCause::BodyTooLarge;
    case 414:
      return LocalCause::UriTooLong;
    case 431:
      return LocalCause::HeadTooLarge;
    default:
      return LocalCause::BadRequest;
  }
}

}  // namespace crest::proxy
