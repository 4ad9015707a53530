#pragma once
// First-match routing of a request to one of a listener's routes by host,
// path prefix and exact header values. Built once per configuration load.

#include <string_view>
#include <vector>

#include "conf/config.h"
#include "http/http_message.h"

namespace crest::proxy {

class Router {
 public:
  explicit Router(const std::vector<conf::Route>& routes) : routes_(&routes) {}

  // Index of the first route that matches, or -1 (404).
  int match(std::string_view host, std::string_view path, const http::MessageHead& head) const;

 private:
  const std::vector<conf::Route>* routes_;
};

// "API.Example.com:8443" -> "api.example.com"; "[::1]:80" -> "[::1]".
std::string hostWithoutPort(std::string_view host);

// Does `host` (normalized) match `pattern` (exact, or "*.example.com" for any subdomain)?
bool hostMatches(std::string_view pattern, std::string_view host);

}  // namespace crest::proxy
