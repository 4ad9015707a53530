#pragma once
// Reads YAML maps field by field, collecting every error with the file, line,
// column and field path instead of stopping at the first one, and rejecting
// keys the schema does not know.

#include <yaml-cpp/yaml.h>

#include <initializer_list>
#include <string>
#include <vector>

#include "conf/units.h"

namespace crest::conf {

struct ConfigError {
  std::string file;
  int line = 0;  // 1-based; 0 when the error is about the whole file
  int column = 0;
  std::string field;  // field path, "" for file-level errors
  std::string message;

  // "crest.yaml:14:7: pools.api.servers[1].address: expected host:port, got \"x\""
  std::string format() const;
};

class ErrorList {
 public:
  explicit ErrorList(std::string file) : file_(std::move(file)) {}

  void add(const YAML::Mark& mark, const std::string& field, const std::string& message);
  void addAt(int line, int column, const std::string& field, const std::string& message);
  const std::vector<ConfigError>& all() const { return errors_; }
  bool empty() const { return errors_.empty(); }

 private:
  std::string file_;
  std::vector<ConfigError> errors_;
};

std::string childPath(const std::string& parent, const std::string& key);
std::string itemPath(const std::string& parent, size_t index);
std::string quote(const std::string& s);
// An HTTP token (RFC 9110): header names, and the names of listeners and pools.
bool validToken(const std::string& s);

// One YAML mapping under a field path. Construction reports a node that is not
// a mapping and every key outside `allowed`. The typed readers leave their
// output untouched when the key is absent, so defaults live in the structs.
class MapReader {
 public:
  MapReader(ErrorList& errors, const YAML::Node& node, std::string path,
            std::initializer_list<const char*> allowed);

  bool isMap() const { return is_map_; }
  bool has(const char* key) const;
  YAML::Node get(const char* key) const { return is_map_ ? node_[key] : YAML::Node(); }
  std::string path(const char* key) const { return childPath(path_, key); }
  const YAML::Mark mark() const { return node_.Mark(); }
  ErrorList& errors() const { return errors_; }

  // Records "missing required field" at the mapping when `key` is absent.
  bool require(const char* key) const;

  bool readString(const char* key, std::string& out) const;
  bool readDuration(const char* key, Duration& out) const;
  bool readFineDuration(const char* key, std::chrono::microseconds& out) const;
  bool readSize(const char* key, uint64_t& out) const;
  bool readUint(const char* key, uint32_t& out, uint32_t min, uint32_t max) const;
  bool readHostPort(const char* key, HostPort& out) const;
  // `true` or `false`, nothing else (YAML 1.1's yes/no/on/off are refused).
  bool readBool(const char* key, bool& out) const;
  // One of `choices`, e.g. balance names.
  bool readChoice(const char* key, std::string& out,
                  std::initializer_list<const char*> choices) const;

 private:
  // The scalar text at `key`; false (with an error) when present but not a scalar.
  bool scalar(const char* key, std::string& out) const;
  void fail(const char* key, const std::string& message) const;
  // The value at `key` through `parse`; on nullopt, "expected <what>, got ...".
  template <typename T, typename Parse>
  bool readParsed(const char* key, T& out, Parse parse, const char* what) const;

  ErrorList& errors_;
  YAML::Node node_;
  std::string path_;
  bool is_map_ = false;
};

// Reports every key given twice in one mapping, anywhere under `node`, at
// the second occurrence (yaml-cpp keeps both; lookups would see the first).
void reportDuplicateKeys(ErrorList& errors, const YAML::Node& node, const std::string& path);

// Errors in the order of the file (by line, then column), as an editor shows them.
void sortByPosition(std::vector<ConfigError>& errors);

// Calls fn(item_node, item_path, index) for each element of a sequence at
// reader's `key`; reports a value that is not a sequence.
template <typename Fn>
void forEachItem(const MapReader& reader, const char* key, Fn&& fn) {
  if (!reader.has(key)) return;
  YAML::Node seq = reader.get(key);
  if (!seq.IsSequence()) {
    reader.errors().add(seq.Mark(), reader.path(key), "expected a list");
    return;
  }
  for (size_t i = 0; i < seq.size(); ++i) fn(seq[i], itemPath(reader.path(key), i), i);
}

}  // namespace crest::conf
