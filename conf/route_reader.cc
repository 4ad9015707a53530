#include "conf/route_reader.h"

#include <charconv>
#include <cstdlib>

namespace crest::conf {

namespace {

bool validHostPattern(const std::string& host) {
  std::string_view rest = host;
  if (rest.starts_with("*.")) rest.remove_prefix(2);
  if (rest.empty()) return false;
  for (char c : rest) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
              c == '_' || c == '[' || c == ']' || c == ':';
    if (!ok) return false;
  }
  return true;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

RouteReader::RouteReader(ErrorList& errors, const Config& config)
    : errors_(errors), config_(config) {}

void RouteReader::readRequestKey(const MapReader& r, const char* key, RequestKey& out,
                                 bool allow_none) {
  std::string text;
  if (!r.readString(key, text)) return;
  auto colon = text.find(':');
  std::string kind = text.substr(0, colon);
  std::string name = colon == std::string::npos ? "" : text.substr(colon + 1);
  if (text == "none" && allow_none) {
    out = {RequestKey::Kind::None, ""};
  } else if (text == "client_ip") {
    out = {RequestKey::Kind::ClientIp, ""};
  } else if ((kind == "cookie" || kind == "header") && validToken(name)) {
    out = {kind == "cookie" ? RequestKey::Kind::Cookie : RequestKey::Kind::Header,
           kind == "header" ? lower(name) : name};
  } else {
    errors_.add(r.get(key).Mark(), r.path(key),
                std::string("expected ") + (allow_none ? "none | " : "") +
                    "client_ip | cookie:NAME | header:NAME, got " + quote(text));
  }
}

void RouteReader::checkPoolExists(const YAML::Node& node, const std::string& path,
                                  const std::string& pool) {
  if (config_.findPool(pool) == nullptr) {
    std::string known;
    for (const auto& p : config_.pools) known += (known.empty() ? "" : ", ") + p.name;
    errors_.add(node.Mark(), path, "unknown pool " + quote(pool) + " (pools: " + known + ")");
  }
}

Route RouteReader::read(const YAML::Node& node, const std::string& path) {
  Route route;
  MapReader r(errors_, node, path,
              {"match", "pool", "split", "priority", "rate_limit", "fallback", "cache", "access",
               "fault", "mirror"});
  if (!r.isMap()) return route;
  if (r.has("match")) readMatch(r.get("match"), r.path("match"), route.match);
  if (r.has("pool") == r.has("split")) {
    errors_.add(node.Mark(), path, "a route needs exactly one of pool or split");
  }
  if (r.readString("pool", route.pool)) checkPoolExists(r.get("pool"), r.path("pool"), route.pool);
  if (r.has("split")) route.split = readSplit(r.get("split"), r.path("split"));
  std::string priority;
  if (r.readChoice("priority", priority, {"high", "normal", "low"})) {
    route.priority = priority == "high"  ? Priority::High
                     : priority == "low" ? Priority::Low
                                         : Priority::Normal;
  }
  if (r.has("rate_limit"))
    route.rate_limit = readRateLimit(r.get("rate_limit"), r.path("rate_limit"));
  if (r.has("fallback")) route.fallback = readFallback(r.get("fallback"), r.path("fallback"));
  if (r.has("fault")) route.fault = readFault(r.get("fault"), r.path("fault"));
  if (r.has("mirror")) {
    MapReader m(errors_, r.get("mirror"), r.path("mirror"), {"pool", "percent", "max_body"});
    Mirror mirror;
    if (m.require("pool") && m.readString("pool", mirror.pool))
      checkPoolExists(m.get("pool"), m.path("pool"), mirror.pool);
    readPercent(m, "percent", mirror.percent);
    m.readSize("max_body", mirror.max_body);
    route.mirror = std::move(mirror);
  }
  if (r.has("access")) {
    MapReader a(errors_, r.get("access"), r.path("access"), {"allow", "deny"});
    Access access;
    if (a.has("allow")) readCidrList(a, "allow", access.allow.emplace());
    readCidrList(a, "deny", access.deny);
    if (a.isMap() && !a.has("allow") && !a.has("deny")) {
      errors_.add(r.get("access").Mark(), r.path("access"), "access needs allow, deny or both");
    }
    route.access = std::move(access);
  }
  if (r.has("cache")) {
    MapReader c(errors_, r.get("cache"), r.path("cache"), {"ttl", "stale"});
    RouteCache cache;
    c.readDuration("ttl", cache.ttl);
    c.readDuration("stale", cache.stale);
    route.cache = cache;
    if (!config_.cache) {
      errors_.add(r.get("cache").Mark(), r.path("cache"),
                  "a cached route needs the top-level cache section (cache.max_size)");
    }
  }
  return route;
}

void RouteReader::readMatch(const YAML::Node& node, const std::string& path, RouteMatch& match) {
  MapReader r(errors_, node, path, {"host", "path_prefix", "headers"});
  if (r.readString("host", match.host)) {
    match.host = lower(match.host);
    if (!validHostPattern(match.host)) {
      errors_.add(r.get("host").Mark(), r.path("host"),
                  "expected a host name or *.domain, got " + quote(match.host));
    }
  }
  if (r.readString("path_prefix", match.path_prefix) &&
      (match.path_prefix.empty() || match.path_prefix.front() != '/')) {
    errors_.add(r.get("path_prefix").Mark(), r.path("path_prefix"),
                "must start with /, got " + quote(match.path_prefix));
  }
  if (r.has("headers")) {
    YAML::Node headers = r.get("headers");
    if (!headers.IsMap()) {
      errors_.add(headers.Mark(), r.path("headers"),
                  "expected a mapping of header names to values");
      return;
    }
    for (auto it = headers.begin(); it != headers.end(); ++it) {
      std::string name = it->first.Scalar();
      std::string field = childPath(r.path("headers"), name);
      if (!validToken(name)) errors_.add(it->first.Mark(), field, "invalid header name");
      if (!it->second.IsScalar()) {
        errors_.add(it->second.Mark(), field, "expected a single value");
        continue;
      }
      match.headers.push_back({lower(name), it->second.Scalar()});
    }
  }
}

Split RouteReader::readSplit(const YAML::Node& node, const std::string& path) {
  Split split;
  MapReader r(errors_, node, path, {"sticky", "pools"});
  readRequestKey(r, "sticky", split.sticky, true);
  if (!r.require("pools")) return split;
  uint64_t total = 0;
  forEachItem(r, "pools", [&](const YAML::Node& n, const std::string& item, size_t) {
    MapReader t(errors_, n, item, {"pool", "weight"});
    SplitTarget target;
    if (t.require("pool") && t.readString("pool", target.pool)) {
      checkPoolExists(t.get("pool"), t.path("pool"), target.pool);
    }
    if (t.require("weight")) t.readUint("weight", target.weight, 0, 1000000);
    total += target.weight;
    split.pools.push_back(target);
  });
  if (r.get("pools").IsSequence() && total == 0) {
    errors_.add(r.get("pools").Mark(), r.path("pools"), "at least one pool needs a weight above 0");
  }
  return split;
}

RateLimit RouteReader::readRateLimit(const YAML::Node& node, const std::string& path) {
  RateLimit rl;
  MapReader r(errors_, node, path, {"key", "rate", "burst", "scope"});
  rl.key = {RequestKey::Kind::ClientIp, ""};
  readRequestKey(r, "key", rl.key, false);
  std::string rate;
  if (r.require("rate") && r.readString("rate", rate)) {
    auto slash = rate.find('/');
    uint32_t count = 0;
    auto [end, ec] = std::from_chars(rate.data(), rate.data() + rate.size(), count);
    std::string unit = slash == std::string::npos ? "" : rate.substr(slash + 1);
    if (ec != std::errc() || end != rate.data() + slash || count == 0 ||
        (unit != "s" && unit != "m")) {
      errors_.add(r.get("rate").Mark(), r.path("rate"),
                  "expected a rate like 100/s or 600/m, got " + quote(rate));
    } else {
      rl.tokens_per_second = unit == "s" ? count : count / 60.0;
    }
  }
  rl.burst = std::max<uint32_t>(1, static_cast<uint32_t>(rl.tokens_per_second));
  r.readUint("burst", rl.burst, 1, 100000000);
  std::string scope;
  if (r.readChoice("scope", scope, {"local", "cluster"}) && scope == "cluster") {
    rl.cluster = true;
    if (!config_.cluster) {
      errors_.add(r.get("scope").Mark(), r.path("scope"),
                  "scope: cluster needs the top-level cluster section (cluster.redis)");
    }
  }
  return rl;
}

void RouteReader::readPercent(const MapReader& r, const char* key, double& out) {
  std::string text;
  if (!r.readString(key, text)) return;
  char* end = nullptr;
  out = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !(out >= 0 && out <= 100))
    errors_.add(r.get(key).Mark(), r.path(key),
                "expected a percentage from 0 to 100 (fractions allowed), got " + quote(text));
}

Fault RouteReader::readFault(const YAML::Node& node, const std::string& path) {
  Fault f;
  MapReader r(errors_, node, path,
              {"delay", "delay_percent", "abort_status", "abort_percent", "header"});
  r.readDuration("delay", f.delay);
  readPercent(r, "delay_percent", f.delay_percent);
  readPercent(r, "abort_percent", f.abort_percent);
  uint32_t status = 503;
  r.readUint("abort_status", status, 200, 599);
  f.abort_status = static_cast<int>(status);
  if (r.readString("header", f.header)) {
    if (!validToken(f.header))
      errors_.add(r.get("header").Mark(), r.path("header"), "expected a header name");
    f.header = lower(f.header);
  }
  if (f.delay_percent > 0 && f.delay.count() == 0)
    errors_.add(node.Mark(), path, "delay_percent needs a delay greater than 0");
  return f;
}

Fallback RouteReader::readFallback(const YAML::Node& node, const std::string& path) {
  Fallback fb;
  MapReader r(errors_, node, path, {"status", "body", "content_type"});
  uint32_t status = 503;
  r.readUint("status", status, 200, 599);
  fb.status = static_cast<int>(status);
  r.readString("body", fb.body);
  r.readString("content_type", fb.content_type);
  return fb;
}

}  // namespace crest::conf
