#include "server/daemon.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace crest::server {

namespace {

void report(int& fd, char code) {
  if (fd < 0) return;
  ssize_t ignored = ::write(fd, &code, 1);
  (void)ignored;
  ::close(fd);
  fd = -1;
}

}  // namespace

pid_t livePidIn(const std::string& path) {
  std::ifstream in(path);
  long pid = 0;
  if (!(in >> pid) || pid <= 0) return 0;
  if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM) return static_cast<pid_t>(pid);
  return 0;
}

bool writePidFile(const std::string& path, pid_t pid, std::string& error) {
  std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) {
    error = "cannot write pid file " + tmp + ": " + std::strerror(errno);
    return false;
  }
  std::fprintf(f, "%d\n", static_cast<int>(pid));
  bool ok = std::fflush(f) == 0 && ::fsync(fileno(f)) == 0;
  std::fclose(f);
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    error = "cannot write pid file " + path + ": " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

int detach(const std::string& log_file, int& report_fd, std::string& error) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    error = std::string("pipe: ") + std::strerror(errno);
    return 3;
  }
  pid_t child = ::fork();
  if (child < 0) {
    error = std::string("fork: ") + std::strerror(errno);
    return 3;
  }
  if (child > 0) {
    // The caller: wait for the daemon to say it serves (or why it does not).
    ::close(fds[1]);
    char code = 0;
    ssize_t n;
    do {
      n = ::read(fds[0], &code, 1);
    } while (n < 0 && errno == EINTR);
    ::close(fds[0]);
    if (n != 1) {
      error = "the daemon ended before it started serving";
      return 3;
    }
    return code - '0';
  }
  ::close(fds[0]);
  ::setsid();
  // A second fork: the daemon is no session leader, so it can never acquire a terminal.
  pid_t grandchild = ::fork();
  if (grandchild < 0) ::_exit(3);
  if (grandchild > 0) ::_exit(0);
  report_fd = fds[1];
  int null_fd = ::open("/dev/null", O_RDWR);
  int out_fd =
      log_file.empty() ? null_fd : ::open(log_file.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0644);
  if (out_fd < 0) {
    reportFailed(report_fd, 3);
    ::_exit(3);
  }
  ::dup2(null_fd, STDIN_FILENO);
  ::dup2(out_fd, STDOUT_FILENO);
  ::dup2(out_fd, STDERR_FILENO);
  if (out_fd != null_fd) ::close(out_fd);
  ::close(null_fd);
  if (::chdir("/") != 0) {
    // Paths are absolute by now; a daemon that cannot leave its folder still works.
  }
  return -1;
}

void reportStarted(int& report_fd) {
  report(report_fd, '0');
}

void reportFailed(int& report_fd, int exit_code) {
  report(report_fd, static_cast<char>('0' + exit_code));
}

unsigned long raiseOpenFilesLimit() {
  rlimit limit;
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
    ::getrlimit(RLIMIT_NOFILE, &limit);
  }
  return static_cast<unsigned long>(limit.rlim_cur);
}

}  // namespace crest::server
