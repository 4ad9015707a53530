#pragma once
// Process-level operations of `crest --daemon`: pid files, detaching from the
// terminal, and the open-files limit. Main thread, before any worker starts.

#include <sys/types.h>

#include <string>

namespace crest::server {

// The pid that `path` names if that process is alive, else 0 (no file, or stale).
pid_t livePidIn(const std::string& path);

// Writes `pid` to `path` atomically (a temporary file renamed over it).
bool writePidFile(const std::string& path, pid_t pid, std::string& error);

// Detaches: fork, setsid, fork again, standard input from /dev/null and
// standard output and error to `log_file` (appended) or /dev/null. Returns -1
// in the daemon, with `report_fd` set: it must call reportStarted() once it
// serves, or reportFailed(). In the calling process it waits for that report
// and returns the exit code to end with: 0 once the daemon serves, else its code.
int detach(const std::string& log_file, int& report_fd, std::string& error);
void reportStarted(int& report_fd);
void reportFailed(int& report_fd, int exit_code);

// Raises the soft limit on open files to the hard limit; returns the new soft limit.
unsigned long raiseOpenFilesLimit();

}  // namespace crest::server
