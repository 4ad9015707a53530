#include "proxy/runtime_status.h"

#include "observe/admin_server.h"
#include "observe/log.h"
#include "proxy/router.h"

namespace crest::proxy {

using observe::jsonString;

std::string statusJson(const Runtime& runtime, const ReloadStatus& reload) {
  std::string out =
      "{\"generation\": " + std::to_string(runtime.generation()) +
      ",\n \"last_reload\": {\"time\": " + jsonString(observe::log::isoTime(reload.time, false)) +
      ", \"result\": " + (reload.success ? "\"success\"" : "\"failure\"") + "},\n \"pools\": {";
  bool first_pool = true;
  for (const auto& pool : runtime.pools()) {
    out += first_pool ? "\n  " : ",\n  ";
    first_pool = false;
    out += jsonString(pool.config->name) + ": {\"balance\": " + jsonString(pool.config->balance);
    if (const auto& a = pool.admission) {
      out += ", \"slots\": {\"max\": " + std::to_string(a->maxActive()) +
             ", \"in_use\": " + std::to_string(a->active()) +
             ", \"reserved_high\": " + std::to_string(a->reservedHigh()) +
             ", \"reserved_in_use\": " + std::to_string(a->reservedInUse()) + "}";
    }
    out += ", \"servers\": [";
    for (size_t i = 0; i < pool.servers.size(); ++i) {
      const auto& s = *pool.servers[i];
      out += i == 0 ? "\n    " : ",\n    ";
      out += "{\"address\": " + jsonString(s.address) +
             ", \"weight\": " + std::to_string(pool.config->servers[i].weight) +
             ", \"healthy\": " + (s.healthy.load() ? "true" : "false") +
             ", \"active_requests\": " + std::to_string(s.active_requests.load()) + "}";
    }
    out += "]}";
  }
  return out + "}}\n";
}

observe::LiveState liveState(const Runtime& runtime) {
  observe::LiveState live;
  for (const auto& l : runtime.config().listeners) live.listeners.push_back(l.name);
  for (const auto& pool : runtime.pools()) {
    observe::LivePool p;
    p.name = pool.config->name;
    if (pool.admission) {
      p.queue_depth = pool.admission->waiting();
      p.limited = true;
      p.slots_in_use = pool.admission->active();
      p.reserved_slots_in_use = pool.admission->reservedInUse();
    }
    for (const auto& s : pool.servers) {
      p.servers.push_back(
          observe::LiveServer{s->address, s->active_requests.load(), s->healthy.load()});
    }
    live.pools.push_back(std::move(p));
  }
  if (runtime.cache()) live.cache_bytes = runtime.cache()->bytes();
  return live;
}

std::optional<size_t> purgeCache(const Runtime& runtime, std::string_view host,
                                 std::string_view path) {
  if (!runtime.cache()) return std::nullopt;
  // Keys hold the host as routing saw it: lower-case, without port.
  return runtime.cache()->purge(hostWithoutPort(host), path);
}

}  // namespace crest::proxy
