#include "observe/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace crest::observe {
namespace {

constexpr size_t kFlushBytes = 64 * 1024;
constexpr timeval kFlushInterval{0, 100 * 1000};

int openForAppend(const std::string& path) {
  return ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

void appendSeconds(std::chrono::steady_clock::duration d, std::string& out) {
  char buf[32];
  int n = std::snprintf(buf, sizeof buf, "%.3f", std::chrono::duration<double>(d).count());
  out.append(buf, static_cast<size_t>(n));
}

// The request target as logged: quotes, backslashes and controls escaped so a
// line can always be split back into its fields.
void appendEscaped(std::string_view s, std::string& out) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    } else {
      out += c;
    }
  }
}

}  // namespace

std::unique_ptr<AccessLogFile> AccessLogFile::open(const std::string& path, std::string& error) {
  if (path == "-") return std::unique_ptr<AccessLogFile>(new AccessLogFile(path, STDOUT_FILENO));
  int fd = openForAppend(path);
  if (fd < 0) {
    error = "cannot open access log " + path + ": " + std::strerror(errno);
    return nullptr;
  }
  return std::unique_ptr<AccessLogFile>(new AccessLogFile(path, fd));
}

AccessLogFile::~AccessLogFile() {
  if (fd_ != STDOUT_FILENO) ::close(fd_);
}

bool AccessLogFile::reopen(std::string& error) {
  return moveTo(path_, error);
}

bool AccessLogFile::moveTo(const std::string& path, std::string& error) {
  if (fd_ == STDOUT_FILENO) return true;
  int fresh = openForAppend(path);
  if (fresh < 0) {
    error = "cannot open access log " + path + ": " + std::strerror(errno);
    return false;
  }
  path_ = path;
  // dup2 swaps the file behind the descriptor number atomically: a worker
  // writing at this moment writes wholly to the old file or wholly to the new.
  ::dup2(fresh, fd_);
  ::close(fresh);
  return true;
}

void formatAccessRecord(const AccessRecord& r, std::string_view time, std::string& out) {
  out.append(time);
  out += ' ';
  out.append(r.client);
  out += ' ';
  out.append(r.listener);
  out += " \"";
  out.append(r.method);
  out += ' ';
  appendEscaped(r.target, out);
  out.append(r.version_major == 2   ? " HTTP/2.0\" "
             : r.version_minor == 0 ? " HTTP/1.0\" "
                                    : " HTTP/1.1\" ");
  out.append(std::to_string(r.status));
  out += ' ';
  out.append(std::to_string(r.bytes));
  out += ' ';
  appendSeconds(r.total, out);
  out.append(" pool=");
  out.append(r.pool.empty() ? "-" : r.pool);
  out.append(" upstream=");
  out.append(r.upstream.empty() ? "-" : r.upstream);
  out.append(" upstream_time=");
  if (r.upstream.empty()) {
    out += '-';
  } else {
    appendSeconds(r.upstream_time, out);
  }
  out.append(" request_id=");
  out.append(r.request_id.empty() ? "-" : r.request_id);
  out.append(" cause=");
  out.append(r.cause.empty() ? "-" : r.cause);
  if (r.tunnel) {
    out.append(" from_client=");
    out.append(std::to_string(r.from_client));
  }
  out += '\n';
}

AccessLogWriter::AccessLogWriter(event_base* base, int fd)
    : fd_(fd), timer_(evtimer_new(base, &AccessLogWriter::onTimer, this)) {}

AccessLogWriter::~AccessLogWriter() {
  flush();
  event_free(timer_);
}

std::string_view AccessLogWriter::now() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  if (ts.tv_sec != cached_second_) {
    // One strftime a second; the milliseconds are appended per line.
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char buf[32];
    size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    cached_prefix_.assign(buf, n);
    cached_second_ = ts.tv_sec;
  }
  char millis[8];
  std::snprintf(millis, sizeof millis, ".%03dZ", static_cast<int>(ts.tv_nsec / 1000000));
  time_ = cached_prefix_;
  time_ += millis;
  return time_;
}

void AccessLogWriter::append(const AccessRecord& record) {
  formatAccessRecord(record, now(), buffer_);
  if (buffer_.size() >= kFlushBytes) {
    flush();
  } else if (!timer_armed_) {
    evtimer_add(timer_, &kFlushInterval);
    timer_armed_ = true;
  }
}

void AccessLogWriter::flush() {
  size_t done = 0;
  while (done < buffer_.size()) {
    ssize_t n = ::write(fd_, buffer_.data() + done, buffer_.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // a full disk loses log lines, never requests
    done += static_cast<size_t>(n);
  }
  buffer_.clear();
}

void AccessLogWriter::onTimer(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<AccessLogWriter*>(arg);
  self->timer_armed_ = false;
  self->flush();
}

}  // namespace crest::observe
