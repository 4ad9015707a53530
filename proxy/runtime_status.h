#pragma once
// What the admin endpoints and the metrics read of the running configuration:
// the /status document, the live gauges, the cache purge. Main thread.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "observe/metrics.h"
#include "proxy/runtime.h"

namespace crest::proxy {

struct ReloadStatus {
  double time = 0;  // unix seconds of the last reload attempt (or start)
  bool success = true;
};

// The GET /status document.
std::string statusJson(const Runtime& runtime, const ReloadStatus& reload);

// Listeners, pools and servers of `runtime`, with the gauges read at scrape time.
observe::LiveState liveState(const Runtime& runtime);

// Removes the cache's entries for host (as a client writes it) and path (a
// prefix when it ends in *); nullopt when the runtime has no cache.
std::optional<size_t> purgeCache(const Runtime& runtime, std::string_view host,
                                 std::string_view path);

}  // namespace crest::proxy
