#pragma once
// Serializes the heads the proxy sends: requests to servers and responses to
// clients, each rebuilt from parsed fields with hop-by-hop headers dropped and
// the framing chosen for the side it goes to.

#include <event2/buffer.h>

#include <string_view>
#include <utility>
#include <vector>

#include "http/http_message.h"

namespace crest::http {

struct ForwardInfo {
  std::string_view client_ip;     // the peer address, appended to X-Forwarded-For
  std::string_view proto;         // "http" or "https"
  std::string_view request_id;    // used when the request carries no X-Request-Id
  std::string_view default_host;  // Host for HTTP/1.0 requests that sent none
};

// Headers that describe one connection are never forwarded: Connection,
// Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade, Transfer-Encoding, and
// whatever the message's Connection header names.

// The two heads of every proxied exchange are returned, not added to a
// buffer, so that the connection can send them from where they are: they stay
// valid until the thread writes its next head.

// Fields named with `_` (HeaderName::Underscored) are dropped too.

// HTTP/1.1 request head for a server; `target` in origin form. A POST, PUT
// or PATCH without a body says `Content-Length: 0`.
std::string_view writeUpstreamRequestHead(const MessageHead& request, std::string_view target,
                                          const ForwardInfo& info);

// Response head for a client. `chunked`: re-frame the body as chunks;
// `close`: the proxy closes the connection after this response;
// `extra_headers`: complete header lines the proxy adds (rate limit state).
std::string_view writeDownstreamResponseHead(const MessageHead& response, int client_minor,
                                             bool chunked, bool close,
                                             std::string_view extra_headers = {});

// A complete response produced by the proxy itself.
void writeProxyResponse(int status, std::string_view content_type, std::string_view body,
                        bool close, evbuffer* out, std::string_view extra_headers = {});

// The head of a response the cache answers with: `lines` are the stored
// header lines; `content_length` is stated unless the status forbids a body.
void writeStoredResponseHead(int status, std::string_view reason, std::string_view lines,
                             uint64_t content_length, int client_minor, bool close, evbuffer* out,
                             std::string_view extra_headers);

// The end-to-end header lines of `response` for the cache ("Name: value\r\n"):
// all of them, and the subset a 304 repeats.
void storedHeaderLines(const MessageHead& response, std::string& all, std::string& not_modified);

std::string_view reasonPhrase(int status);

// The fields of a server's response that go on to a client whose protocol
// writes heads otherwise (HTTP/2), as views into `response`: hop-by-hop
// fields and a framed body's Content-Length left out, as
// writeDownstreamResponseHead leaves them out. Replaces what `out` held.
void forwardedResponseFields(const MessageHead& response,
                             std::vector<std::pair<std::string_view, std::string_view>>& out);

}  // namespace crest::http
