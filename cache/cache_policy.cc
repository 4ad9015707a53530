#include "cache/cache_policy.h"

#include <charconv>
#include <ctime>

namespace crest::cache {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string lowerCopy(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lower(c);
  return out;
}

std::optional<int64_t> parseSeconds(std::string_view s) {
  s = trim(s);
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec == std::errc::result_out_of_range && !s.empty() && s.front() != '-') {
    return int64_t{1} << 31;  // RFC 9111 1.2.2: a too-large delta means "very long"
  }
  if (ec != std::errc() || end != s.data() + s.size() || v < 0) return std::nullopt;
  return v;
}

// Calls `each` with every comma-separated, trimmed, non-empty element.
template <typename F>
void forEachElement(std::string_view list, F each) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view item = trim(list.substr(0, comma));
    if (!item.empty()) each(item);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
}

}  // namespace

CacheControl parseCacheControl(std::string_view value) {
  CacheControl cc;
  forEachElement(value, [&](std::string_view item) {
    size_t eq = item.find('=');
    std::string name = lowerCopy(trim(item.substr(0, eq)));
    std::string_view arg = eq == std::string_view::npos ? std::string_view() : item.substr(eq + 1);
    if (name == "public") {
      cc.is_public = true;
    } else if (name == "private") {
      cc.is_private = true;
    } else if (name == "no-store") {
      cc.no_store = true;
    } else if (name == "no-cache") {
      cc.no_cache = true;
    } else if (name == "max-age") {
      cc.max_age = parseSeconds(arg);
    } else if (name == "s-maxage") {
      cc.s_maxage = parseSeconds(arg);
    }
  });
  return cc;
}

std::optional<int64_t> parseHttpDate(std::string_view value) {
  std::string text(trim(value));
  // IMF-fixdate, then the two obsolete forms RFC 9110 says to accept.
  for (const char* format :
       {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"}) {
    std::tm tm{};
    const char* end = strptime(text.c_str(), format, &tm);
    if (end != nullptr && *end == '\0') return static_cast<int64_t>(timegm(&tm));
  }
  return std::nullopt;
}

std::optional<Nanos> storableLifetime(const ResponseFacts& response, bool request_has_authorization,
                                      Nanos route_ttl, int64_t now_unix) {
  switch (response.status) {
    case 200:
    case 203:
    case 204:
    case 301:
    case 404:
    case 410:
      break;
    default:
      return std::nullopt;
  }
  CacheControl cc = parseCacheControl(response.cache_control);
  if (cc.is_private || cc.no_store || cc.no_cache || response.has_set_cookie) return std::nullopt;
  if (request_has_authorization && !cc.is_public) return std::nullopt;
  for (const auto& name : varyNames(response.vary)) {
    if (name == "*") return std::nullopt;
  }
  Nanos lifetime;
  if (cc.s_maxage) {
    lifetime = *cc.s_maxage * kSecond;
  } else if (cc.max_age) {
    lifetime = *cc.max_age * kSecond;
  } else if (response.expires) {
    // Expires is relative to the server's clock (its Date), not ours.
    std::optional<int64_t> expires = parseHttpDate(*response.expires);
    std::optional<int64_t> date = response.date ? parseHttpDate(*response.date) : std::nullopt;
    if (!expires) return std::nullopt;  // an invalid Expires means "already expired"
    lifetime = (*expires - date.value_or(now_unix)) * kSecond;
  } else {
    lifetime = route_ttl;
  }
  lifetime -= response.age * kSecond;
  if (lifetime <= 0) return std::nullopt;
  return lifetime;
}

std::vector<std::string> varyNames(std::string_view vary) {
  std::vector<std::string> names;
  forEachElement(vary, [&](std::string_view item) { names.push_back(lowerCopy(item)); });
  return names;
}

bool etagMatches(std::string_view if_none_match, std::string_view etag) {
  auto opaque = [](std::string_view tag) {
    tag = trim(tag);
    if (tag.starts_with("W/")) tag.remove_prefix(2);
    return tag;
  };
  if (etag.empty()) return false;
  bool match = false;
  forEachElement(if_none_match, [&](std::string_view item) {
    match = match || item == "*" || opaque(item) == opaque(etag);
  });
  return match;
}

}  // namespace crest::cache
