#include "proxy/router.h"

#include <string>

namespace crest::proxy {

using namespace http;

std::string hostWithoutPort(std::string_view host) {
  std::string out;
  if (!host.empty() && host.front() == '[') {
    host =
        host.substr(0, host.find(']') == std::string_view::npos ? host.size() : host.find(']') + 1);
  } else {
    host = host.substr(0, host.find(':'));
  }
  out.assign(host);
  for (char& c : out) c = lowerAscii(c);
  if (!out.empty() && out.back() == '.') out.pop_back();  // "example.com." names the same host
  return out;
}

bool hostMatches(std::string_view pattern, std::string_view host) {
  if (pattern.starts_with("*.")) {
    std::string_view suffix = pattern.substr(1);  // ".example.com"
    return host.size() > suffix.size() && host.ends_with(suffix);
  }
  return pattern == host;
}

int Router::match(std::string_view host, std::string_view path, const MessageHead& head) const {
  for (size_t i = 0; i < routes_->size(); ++i) {
    const conf::RouteMatch& m = (*routes_)[i].match;
    if (!m.host.empty() && !hostMatches(m.host, host)) continue;
    if (!m.path_prefix.empty() && !path.starts_with(m.path_prefix)) continue;
    bool headers_ok = true;
    for (const auto& h : m.headers) {
      const std::string* value = head.find(h.name);
      headers_ok = headers_ok && value != nullptr && *value == h.value;
    }
    if (headers_ok) return static_cast<int>(i);
  }
  return -1;
}

}  // namespace crest::proxy
