#pragma once
// One line per event on stderr: "2026-11-27T10:00:00.123Z info reload: ...".
// Each line is a single write(2), so threads never interleave within a line.

#include <string_view>

namespace crest::observe::log {

enum class Level { Debug, Info, Warn, Error };

void write(Level level, std::string_view message);

inline void info(std::string_view m) {
  write(Level::Info, m);
}
inline void warn(std::string_view m) {
  write(Level::Warn, m);
}
inline void error(std::string_view m) {
  write(Level::Error, m);
}

// ISO 8601 UTC with milliseconds, for logs and /status.
std::string isoTime(double unix_seconds, bool with_millis);
double nowUnixSeconds();

}  // namespace crest::observe::log
