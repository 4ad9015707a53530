#include "http/http_message.h"

namespace crest::http {

HeaderName classifyHeaderName(std::string_view name) {
  // The length picks the few candidates; one comparison settles it.
  auto is = [name](std::string_view known, HeaderName id) {
    return equalsIgnoreCase(name, known) ? id : HeaderName::Other;
  };
  switch (name.size()) {
    case 2:
      return is("te", HeaderName::TE);
    case 4:
      return is("host", HeaderName::Host);
    case 6:
      return is("expect", HeaderName::Expect);
    case 7:
      return name[0] == 'u' || name[0] == 'U' ? is("upgrade", HeaderName::Upgrade)
                                              : is("trailer", HeaderName::Trailer);
    case 10:
      return name[0] == 'c' || name[0] == 'C' ? is("connection", HeaderName::Connection)
                                              : is("keep-alive", HeaderName::KeepAlive);
    case 12:
      return is("x-request-id", HeaderName::XRequestId);
    case 14:
      return is("content-length", HeaderName::ContentLength);
    case 15:
      return is("x-forwarded-for", HeaderName::XForwardedFor);
    case 16:
      return name[0] == 'p' || name[0] == 'P' ? is("proxy-connection", HeaderName::ProxyConnection)
                                              : is("x-forwarded-host", HeaderName::XForwardedHost);
    case 17:
      return name[0] == 't' || name[0] == 'T'
                 ? is("transfer-encoding", HeaderName::TransferEncoding)
                 : is("x-forwarded-proto", HeaderName::XForwardedProto);
    default:
      return HeaderName::Other;
  }
}

bool listHasToken(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (equalsIgnoreCase(item, token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

bool MessageHead::hasToken(HeaderName id, std::string_view token) const {
  for (const auto& h : headers) {
    if (h.id == id && listHasToken(h.value, token)) return true;
  }
  return false;
}

}  // namespace crest::http
