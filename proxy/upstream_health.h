#pragma once
// Passive health: what the proxy does when a server fails a connection, and
// the log line every health change writes (active checks write it too).

#include <string>

#include "proxy/runtime.h"

namespace crest::proxy {

// Takes a server that refused a connection out of balancing at once, and
// counts the connect error. Logs only when this call flipped the state. Any
// worker thread.
void ejectServer(UpstreamServer& server, const std::string& why);

// "health: pool api server 10.0.0.11:8080: healthy -> down (connect refused, passive)"
void logHealthChange(const std::string& pool, const std::string& address, bool healthy,
                     const std::string& why);

}  // namespace crest::proxy
