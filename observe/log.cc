#include "observe/log.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <ctime>
#include <string>

namespace crest::observe::log {

double nowUnixSeconds() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

std::string isoTime(double unix_seconds, bool with_millis) {
  time_t secs = static_cast<time_t>(std::floor(unix_seconds));
  int millis = static_cast<int>((unix_seconds - static_cast<double>(secs)) * 1000.0);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[40];
  size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  if (with_millis)
    n += static_cast<size_t>(std::snprintf(buf + n, sizeof buf - n, ".%03d", millis));
  buf[n++] = 'Z';
  return std::string(buf, n);
}

void write(Level level, std::string_view message) {
  static constexpr const char* kNames[] = {"debug", "info", "warn", "error"};
  std::string line = isoTime(nowUnixSeconds(), true);
  line += ' ';
  line += kNames[static_cast<int>(level)];
  line += ' ';
  line += message;
  line += '\n';
  // Logging must not fail the caller; a full or closed stderr loses the line.
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

}  // namespace crest::observe::log
