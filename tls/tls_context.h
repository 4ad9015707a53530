#pragma once
// Builds the OpenSSL server context of one listener from its configuration and
// checks what `crest --check` must catch: unreadable files, expired
// certificates, keys that do not match their certificate.

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <vector>

#include "conf/config.h"
#include "conf/yaml_reader.h"

namespace crest::tls {

struct SslCtxFree {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;

// A context for `tls`, or null with the reasons appended to `errors`, each
// pointing at the certificate entry in the configuration file.
SslCtxPtr buildServerContext(const conf::TlsConfig& tls, const std::string& config_file,
                             std::vector<conf::ConfigError>& errors);

}  // namespace crest::tls
