#pragma once
// YAML file -> validated Config. Every problem is collected, none thrown:
// the caller prints them all (crest --check, SIGHUP reload) and keeps what it had.

#include <memory>
#include <string>
#include <vector>

#include "conf/config.h"
#include "conf/yaml_reader.h"

namespace crest::conf {

struct LoadResult {
  std::shared_ptr<const Config> config;  // null when errors is not empty
  std::vector<ConfigError> errors;
};

// Reads `path`. Relative paths inside the file are taken from the file's folder.
LoadResult loadConfigFile(const std::string& path);

// Parses `text` as if it were the file `file_name` in folder `base_dir` (tests).
LoadResult loadConfigText(const std::string& text, const std::string& file_name,
                          const std::string& base_dir);

}  // namespace crest::conf
