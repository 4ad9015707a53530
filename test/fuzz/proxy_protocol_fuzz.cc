// libFuzzer target: a connection's first bytes on a proxy_protocol listener.
// Besides not crashing, a header's verdict must not depend on what follows
// it, and every part of a whole header must read as incomplete: otherwise a
// header split across reads would be judged otherwise than one in one read.

#include <string_view>

#include "io/proxy_protocol.h"

using crest::io::parseProxyHeader;
using crest::io::ProxyHeader;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  ProxyHeader h = parseProxyHeader(bytes);
  if (h.status != ProxyHeader::Status::Done) return 0;
  if (h.length == 0 || h.length > size || h.length > crest::io::kMaxProxyHeader) __builtin_trap();
  ProxyHeader alone = parseProxyHeader(bytes.substr(0, h.length));
  if (alone.status != ProxyHeader::Status::Done || alone.length != h.length ||
      alone.has_source != h.has_source)
    __builtin_trap();
  for (size_t n = 1; n < h.length; ++n) {
    if (parseProxyHeader(bytes.substr(0, n)).status != ProxyHeader::Status::Incomplete)
      __builtin_trap();
  }
  return 0;
}
