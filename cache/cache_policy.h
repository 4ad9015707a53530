#pragma once
// What a shared cache may store and for how long (SPEC.md "Cache", after
// RFC 9111): the rules only, on header values the proxy hands over. Pure
// functions; no clock (times are passed in).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace crest::cache {

using Nanos = int64_t;
constexpr Nanos kSecond = 1'000'000'000;

struct CacheControl {
  bool is_public = false;
  bool is_private = false;
  bool no_store = false;
  bool no_cache = false;
  std::optional<int64_t> max_age;   // seconds
  std::optional<int64_t> s_maxage;  // seconds
};

// Directives of one or more Cache-Control values (joined with ","). Unknown
// directives are ignored; a malformed number makes its directive absent.
CacheControl parseCacheControl(std::string_view value);

// An HTTP-date (IMF-fixdate, RFC 850 or asctime) as Unix seconds; nullopt when malformed.
std::optional<int64_t> parseHttpDate(std::string_view value);

// The response facts the rules look at.
struct ResponseFacts {
  int status = 0;
  std::string_view cache_control;  // all values joined; "" when absent
  bool has_set_cookie = false;
  std::string_view vary;  // "" when absent
  std::optional<std::string_view> expires;
  std::optional<std::string_view> date;
  int64_t age = 0;  // the response's Age header, seconds
};

// How long a stored response stays fresh, counted from when it is stored;
// nullopt when a shared cache must not store it (status, private, no-store,
// no-cache, Set-Cookie, Vary: *, an Authorization request without public,
// or no freshness at all). `route_ttl` applies when the response names none.
std::optional<Nanos> storableLifetime(const ResponseFacts& response, bool request_has_authorization,
                                      Nanos route_ttl, int64_t now_unix);

// The header names listed by Vary, lower-case, in order ("*" is one of them
// when present).
std::vector<std::string> varyNames(std::string_view vary);

// If-None-Match against an entity tag, by weak comparison ("*" matches any).
bool etagMatches(std::string_view if_none_match, std::string_view etag);

}  // namespace crest::cache
