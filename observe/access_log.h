#pragma once
// The access log: one line per request,
//
//   2026-11-27T10:00:00.123Z 203.0.113.9 public "GET /v2/users HTTP/1.1" 200 5120 0.012
//       pool=api upstream=10.0.0.11:8080 upstream_time=0.010 request_id=3f2a... cause=-
//
// (on one line): end time, client address, listener, request line, status,
// response body bytes, total seconds, then pool, server and server seconds
// ("-" when the request reached none), the request id, and the cause when the
// proxy answered itself or cut the response short (proxy/local_answer.h).
// A WebSocket tunnel's line is written when it ends: status 101, the bytes
// sent to the client, its whole duration, and `from_client=N` at the end.
//
// AccessLogFile owns the descriptor (main thread). Each worker has an
// AccessLogWriter that buffers lines and writes them whole with one write(2)
// every 100 ms or 64 KiB, so the event loop never waits on the disk for long
// and lines of different workers never interleave (O_APPEND).

#include <event2/event.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

namespace crest::observe {

class AccessLogFile {
 public:
  // "-" is standard output; null with `error` set when the file cannot be opened.
  static std::unique_ptr<AccessLogFile> open(const std::string& path, std::string& error);
  ~AccessLogFile();

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  // Opens the path again onto the same descriptor (logrotate moved the file).
  // Main thread; workers keep writing to the same descriptor number throughout.
  bool reopen(std::string& error);
  // Like reopen(), for another path (a reload changed access_log).
  bool moveTo(const std::string& path, std::string& error);

 private:
  AccessLogFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  std::string path_;
  int fd_;
};

struct AccessRecord {
  std::string_view client;
  std::string_view listener;
  std::string_view method;
  std::string_view target;
  int version_major = 1;  // 2: HTTP/2
  int version_minor = 1;
  int status = 0;
  uint64_t bytes = 0;
  std::chrono::steady_clock::duration total{};
  std::string_view pool;      // "" = none
  std::string_view upstream;  // "" = none
  std::chrono::steady_clock::duration upstream_time{};
  std::string_view request_id;
  std::string_view cause;  // why the proxy answered itself or cut it short; "" = a server answered
  // A WebSocket tunnel: `bytes` went to the client, `from_client` came from it.
  bool tunnel = false;
  uint64_t from_client = 0;
};

// Appends `r` as one line to `out` ("time" given, so tests can pin it).
void formatAccessRecord(const AccessRecord& r, std::string_view time, std::string& out);

class AccessLogWriter {
 public:
  AccessLogWriter(event_base* base, int fd);
  ~AccessLogWriter();  // flushes what is left

  void append(const AccessRecord& record);
  void flush();

 private:
  static void onTimer(evutil_socket_t fd, short what, void* arg);
  std::string_view now();

  int fd_;
  event* timer_;
  bool timer_armed_ = false;
  std::string buffer_;
  time_t cached_second_ = 0;
  std::string cached_prefix_;  // "2026-11-27T10:00:00" for cached_second_
  std::string time_;
};

}  // namespace crest::observe
