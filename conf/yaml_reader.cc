#include "conf/yaml_reader.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <map>
#include <optional>
#include <tuple>

namespace crest::conf {

std::string ConfigError::format() const {
  std::string out = file;
  if (line > 0) {
    out.append(":").append(std::to_string(line)).append(":").append(std::to_string(column));
  }
  out.append(": ");
  if (!field.empty()) out.append(field).append(": ");
  return out.append(message);
}

void ErrorList::add(const YAML::Mark& mark, const std::string& field, const std::string& message) {
  // yaml-cpp marks are 0-based and -1 for nodes that do not exist in the file.
  int line = mark.line >= 0 ? mark.line + 1 : 0;
  int column = mark.column >= 0 ? mark.column + 1 : 0;
  addAt(line, column, field, message);
}

void ErrorList::addAt(int line, int column, const std::string& field, const std::string& message) {
  errors_.push_back(ConfigError{file_, line, column, field, message});
}

std::string childPath(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : parent + "." + key;
}

std::string itemPath(const std::string& parent, size_t index) {
  return parent + "[" + std::to_string(index) + "]";
}

std::string quote(const std::string& s) {
  return "\"" + s + "\"";
}

bool validToken(const std::string& s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (c <= ' ' || c >= 127 || std::strchr("\"(),/:;<=>?@[\\]{}", c) != nullptr) return false;
  }
  return true;
}

void reportDuplicateKeys(ErrorList& errors, const YAML::Node& node, const std::string& path) {
  if (node.IsSequence()) {
    for (size_t i = 0; i < node.size(); ++i)
      reportDuplicateKeys(errors, node[i], itemPath(path, i));
    return;
  }
  if (!node.IsMap()) return;
  std::map<std::string, int> first_line;
  for (auto it = node.begin(); it != node.end(); ++it) {
    std::string key = it->first.Scalar();
    std::string key_path = childPath(path, key);
    auto [first, fresh] = first_line.emplace(key, it->first.Mark().line + 1);
    if (!fresh) {
      errors.add(
          it->first.Mark(), key_path,
          "given twice in one mapping (first at line " + std::to_string(first->second) + ")");
    }
    reportDuplicateKeys(errors, it->second, key_path);
  }
}

void sortByPosition(std::vector<ConfigError>& errors) {
  std::stable_sort(errors.begin(), errors.end(), [](const ConfigError& a, const ConfigError& b) {
    return std::tie(a.file, a.line, a.column) < std::tie(b.file, b.line, b.column);
  });
}

MapReader::MapReader(ErrorList& errors, const YAML::Node& node, std::string path,
                     std::initializer_list<const char*> allowed)
    : errors_(errors), node_(node), path_(std::move(path)) {
  if (!node_.IsMap()) {
    // An empty mapping written as "key:" is null; treat it as an empty map.
    is_map_ = false;
    if (!node_.IsNull()) errors_.add(node_.Mark(), path_, "expected a mapping of fields");
    return;
  }
  is_map_ = true;
  for (auto it = node_.begin(); it != node_.end(); ++it) {
    std::string key = it->first.Scalar();
    bool known = false;
    for (const char* a : allowed) known = known || key == a;
    if (known) continue;
    std::string list;
    for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
    errors_.add(it->first.Mark(), childPath(path_, key),
                "unknown field" + (list.empty() ? std::string() : " (allowed: " + list + ")"));
  }
}

bool MapReader::has(const char* key) const {
  return is_map_ && node_[key].IsDefined();
}

bool MapReader::require(const char* key) const {
  if (has(key)) return true;
  errors_.add(node_.Mark(), path(key), "missing required field");
  return false;
}

void MapReader::fail(const char* key, const std::string& message) const {
  errors_.add(node_[key].Mark(), path(key), message);
}

bool MapReader::scalar(const char* key, std::string& out) const {
  if (!has(key)) return false;
  YAML::Node value = node_[key];
  if (!value.IsScalar()) {
    fail(key, "expected a single value");
    return false;
  }
  out = value.Scalar();
  return true;
}

bool MapReader::readString(const char* key, std::string& out) const {
  std::string text;
  if (!scalar(key, text)) return false;
  out = text;
  return true;
}

template <typename T, typename Parse>
bool MapReader::readParsed(const char* key, T& out, Parse parse, const char* what) const {
  std::string text;
  if (!scalar(key, text)) return false;
  auto value = parse(text);
  if (!value) {
    fail(key, std::string("expected ") + what + ", got " + quote(text));
    return false;
  }
  out = *value;
  return true;
}

bool MapReader::readDuration(const char* key, Duration& out) const {
  return readParsed(key, out, parseDuration, "a duration like 250ms, 2s or 1m");
}

bool MapReader::readFineDuration(const char* key, std::chrono::microseconds& out) const {
  return readParsed(key, out, parseFineDuration, "a duration like 50us, 1ms or 0");
}

bool MapReader::readSize(const char* key, uint64_t& out) const {
  return readParsed(key, out, parseSize, "a size like 16KiB or 1MiB");
}

bool MapReader::readUint(const char* key, uint32_t& out, uint32_t min, uint32_t max) const {
  std::string text;
  if (!scalar(key, text)) return false;
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < min || value > max) {
    fail(key, "expected a whole number from " + std::to_string(min) + " to " + std::to_string(max) +
                  ", got " + quote(text));
    return false;
  }
  out = static_cast<uint32_t>(value);
  return true;
}

bool MapReader::readHostPort(const char* key, HostPort& out) const {
  std::string text;
  if (!scalar(key, text)) return false;
  if (auto parsed = parseHostPort(text)) {
    out = *parsed;
    return true;
  }
  fail(key, portOutOfRange(text) ? "port out of range (1-65535) in " + quote(text)
                                 : "expected host:port, got " + quote(text));
  return false;
}

bool MapReader::readBool(const char* key, bool& out) const {
  auto parse = [](const std::string& text) -> std::optional<bool> {
    if (text == "true") return true;
    if (text == "false") return false;
    return std::nullopt;
  };
  return readParsed(key, out, parse, "true or false");
}

bool MapReader::readChoice(const char* key, std::string& out,
                           std::initializer_list<const char*> choices) const {
  std::string text;
  if (!scalar(key, text)) return false;
  std::string list;
  for (const char* c : choices) {
    if (text == c) {
      out = text;
      return true;
    }
    list += (list.empty() ? "" : " | ") + std::string(c);
  }
  fail(key, "expected one of " + list + ", got " + quote(text));
  return false;
}

}  // namespace crest::conf
