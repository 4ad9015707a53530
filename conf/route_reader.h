#pragma once
// Reads one route of a listener: its match, its pool or split, priority,
// rate limit, fallback and cache. The pools and the cache section are read
// first, so that a route can be checked against them.

#include <string>

#include "conf/config.h"
#include "conf/yaml_reader.h"

namespace crest::conf {

class RouteReader {
 public:
  RouteReader(ErrorList& errors, const Config& config);
  Route read(const YAML::Node& node, const std::string& path);

 private:
  // "none" | "client_ip" | "cookie:NAME" | "header:NAME"; `allow_none` for split stickiness.
  void readRequestKey(const MapReader& r, const char* key, RequestKey& out, bool allow_none);
  void checkPoolExists(const YAML::Node& node, const std::string& path, const std::string& pool);
  void readMatch(const YAML::Node& node, const std::string& path, RouteMatch& match);
  Split readSplit(const YAML::Node& node, const std::string& path);
  RateLimit readRateLimit(const YAML::Node& node, const std::string& path);
  Fallback readFallback(const YAML::Node& node, const std::string& path);
  Fault readFault(const YAML::Node& node, const std::string& path);
  // 0-100, fractions allowed.
  void readPercent(const MapReader& r, const char* key, double& out);

  ErrorList& errors_;
  const Config& config_;
};

}  // namespace crest::conf
