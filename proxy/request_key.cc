#include "proxy/request_key.h"

#include "balancer/balancer.h"

namespace crest::proxy {

namespace {

// The value of cookie `name` in the request's Cookie headers.
std::optional<std::string_view> cookieValue(const http::MessageHead& head,
                                            const std::string& name) {
  for (const auto& f : head.headers) {
    if (!http::equalsIgnoreCase(f.name, "cookie")) continue;
    std::string_view rest = f.value;
    while (!rest.empty()) {
      size_t semi = rest.find(';');
      std::string_view pair = rest.substr(0, semi);
      while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
      size_t eq = pair.find('=');
      if (eq != std::string_view::npos && pair.substr(0, eq) == name) return pair.substr(eq + 1);
      if (semi == std::string_view::npos) break;
      rest.remove_prefix(semi + 1);
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string_view> headerValue(const http::MessageHead& head, std::string_view name) {
  const std::string* value = head.find(name);
  if (value == nullptr) return std::nullopt;
  return std::string_view(*value);
}

uint64_t requestKeyHash(const conf::RequestKey& key, const http::MessageHead& head,
                        uint64_t client_hash, ExchangeContext& context) {
  switch (key.kind) {
    case conf::RequestKey::Kind::None:
      return context.random();
    case conf::RequestKey::Kind::ClientIp:
      return client_hash;
    case conf::RequestKey::Kind::Cookie:
    case conf::RequestKey::Kind::Header: {
      auto value = key.kind == conf::RequestKey::Kind::Cookie ? cookieValue(head, key.name)
                                                              : headerValue(head, key.name);
      return value ? balancer::hashBytes(value->data(), value->size()) : client_hash;
    }
  }
  return client_hash;
}

}  // namespace crest::proxy
