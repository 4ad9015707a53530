// crest: command line, configuration check, and start.

#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "conf/loader.h"
#include "observe/log.h"
#include "proxy/runtime.h"
#include "server/daemon.h"
#include "server/server.h"
#include "tls/tls_context.h"

namespace {

constexpr const char* kUsage =
    "usage: crest -c FILE            run in the foreground with this configuration\n"
    "       crest -c FILE --check    validate FILE and exit (0: configuration OK, 1: errors)\n"
    "       crest -c FILE --daemon --pid-file PATH [--log-file PATH]\n"
    "                                detach, write the pid, log to PATH (default: discarded)\n"
    "       crest --version | --help\n";

enum ExitCode { kOk = 0, kConfigError = 1, kUsageError = 2, kStartFailure = 3 };

// Everything --check validates beyond the YAML: certificates and keys load,
// server addresses resolve. Returns the runtime when all is well.
std::shared_ptr<const crest::proxy::Runtime> loadAll(
    const std::string& path, crest::observe::Metrics& metrics,
    const std::shared_ptr<crest::tls::TicketKeys>& tickets,
    std::vector<crest::conf::ConfigError>& errors) {
  auto loaded = crest::conf::loadConfigFile(path);
  errors = loaded.errors;
  if (!errors.empty()) return nullptr;
  auto runtime = crest::proxy::Runtime::build(loaded.config, nullptr, 1, metrics, tickets, errors);
  crest::conf::sortByPosition(errors);
  return errors.empty() ? runtime : nullptr;
}

// A read of a large body lands in a 128 KiB block (socket_io.h), freed once
// the body has gone on. glibc gives a thread's freed heap top back to the
// kernel past 128 KiB and lends blocks of that size from mmap, so each such
// response faulted its pages in again (0.8 to 2.9 page faults per 16 KiB
// response over HTTP/2). Freed memory is kept for reuse instead, up to
// 64 MiB at a heap's top, and blocks under 4 MiB come from the heap.
void keepFreedMemory() {
  mallopt(M_MMAP_THRESHOLD, 4 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  bool check = false;
  bool daemon = false;
  std::string pid_file;
  std::string log_file;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--version") {
      std::printf("crest %s\n", CREST_VERSION);
      return kOk;
    } else if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return kOk;
    } else if ((arg == "-c" || arg == "--config") && i + 1 < argc) {
      config_path = argv[++i];
    } else if (arg == "--check") {
      check = true;
    } else if (arg == "--daemon") {
      daemon = true;
    } else if (arg == "--pid-file" && i + 1 < argc) {
      pid_file = std::filesystem::absolute(argv[++i]).string();
    } else if (arg == "--log-file" && i + 1 < argc) {
      log_file = std::filesystem::absolute(argv[++i]).string();
    } else {
      std::fprintf(stderr, "crest: unknown or incomplete argument \"%s\"\n%s", arg.c_str(), kUsage);
      return kUsageError;
    }
  }
  if (config_path.empty()) {
    std::fprintf(stderr, "crest: -c FILE is required\n%s", kUsage);
    return kUsageError;
  }
  if (daemon && pid_file.empty()) {
    std::fprintf(stderr, "crest: --daemon needs --pid-file PATH\n%s", kUsage);
    return kUsageError;
  }

  // Reloads read the file the start read, wherever the process is by then
  // (a daemon changes to /); messages name it as it was given.
  crest::server::Server server(std::filesystem::absolute(config_path).string());
  std::vector<crest::conf::ConfigError> errors;
  auto runtime = loadAll(config_path, server.metrics(), server.ticketKeys(), errors);
  if (!runtime) {
    for (const auto& e : errors) std::fprintf(stderr, "%s\n", e.format().c_str());
    return kConfigError;
  }
  if (check) {
    std::printf("configuration OK\n");
    return kOk;
  }
  if (!pid_file.empty()) {
    if (pid_t other = crest::server::livePidIn(pid_file)) {
      std::fprintf(stderr, "crest: pid file %s names running process %d\n", pid_file.c_str(),
                   static_cast<int>(other));
      return kStartFailure;
    }
  }
  int report_fd = -1;
  if (daemon) {
    std::string error;
    int code = crest::server::detach(log_file, report_fd, error);
    if (code >= 0) {
      if (code != 0)
        std::fprintf(stderr, "crest: %s\n",
                     error.empty() ? "start failed (see the log file)" : error.c_str());
      return code;
    }
  }
  crest::observe::log::info("open files limit: " +
                            std::to_string(crest::server::raiseOpenFilesLimit()));
  // Writes to a peer that has gone are errors to handle, not a reason to die.
  signal(SIGPIPE, SIG_IGN);
  keepFreedMemory();
  bool wrote_pid = false;
  int code = server.run(runtime, [&] {
    std::string error;
    if (!pid_file.empty()) {
      wrote_pid = crest::server::writePidFile(pid_file, getpid(), error);
      if (!wrote_pid) crest::observe::log::error(error);
    }
    crest::server::reportStarted(report_fd);
  });
  crest::server::reportFailed(report_fd, code);
  if (wrote_pid) ::unlink(pid_file.c_str());
  return code;
}
