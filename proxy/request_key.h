#pragma once
// The key a route's rate limit or split identifies a client by: its address,
// a header, a cookie, or nothing (a random key: every request on its own).

#include <cstdint>
#include <optional>
#include <string_view>

#include "conf/config.h"
#include "http/http_message.h"
#include "proxy/stage.h"

namespace crest::proxy {

// Without the header or cookie the key names, the client address identifies the client.
uint64_t requestKeyHash(const conf::RequestKey& key, const http::MessageHead& head,
                        uint64_t client_hash, ExchangeContext& context);

std::optional<std::string_view> headerValue(const http::MessageHead& head, std::string_view name);

}  // namespace crest::proxy
