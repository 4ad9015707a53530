#pragma once
// The TLS side of one listener, built from its configuration with OpenSSL 3.
// SNI picks a context by name (exact, then "*.example.com" wildcards); each
// name's context holds every certificate that covers it, one per key type
// (an RSA and an ECDSA one), and OpenSSL serves the one the client's
// signature algorithms accept. Names covered by the same certificates share
// a context. Without SNI, or for a name none covers: the first certificate of
// each key type. Mozilla "intermediate": TLS 1.2 and 1.3 (or 1.3 only), ECDHE with
// AEAD for 1.2, server preference, no compression or renegotiation. ALPN from
// the configured list; session tickets with process-wide rotating keys and a
// server-side session cache. Built on the main thread, then read-only and
// shared by all workers.

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "conf/config.h"
#include "conf/yaml_reader.h"
#include "tls/ticket_keys.h"

namespace crest::tls {

struct SslCtxFree {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;

class ServerTls {
 public:
  // Null with the reasons appended to `errors` (unreadable or non-PEM files,
  // expired certificates, keys that do not match), each pointing at the
  // certificate's entry in the configuration file.
  static std::shared_ptr<const ServerTls> build(const conf::TlsConfig& config,
                                                std::shared_ptr<TicketKeys> tickets,
                                                const std::string& config_file,
                                                std::vector<conf::ConfigError>& errors);

  // A server-side SSL object on the default context; SNI may switch it.
  SSL* newSession() const;

  // The context a client naming `server_name` gets (tests and the SNI callback).
  SSL_CTX* contextFor(const std::string& server_name) const;

 private:
  ServerTls() = default;
  static int onServerName(SSL* ssl, int* alert, void* arg);
  static int onAlpn(SSL* ssl, const unsigned char** out, unsigned char* outlen,
                    const unsigned char* in, unsigned int inlen, void* arg);
  static int onTicket(SSL* ssl, unsigned char* key_name, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                      EVP_MAC_CTX* mac, int encrypt);

  std::vector<SslCtxPtr> contexts_;
  SSL_CTX* default_ = nullptr;                          // one of contexts_
  std::unordered_map<std::string, SSL_CTX*> exact_;     // "api.example.com"
  std::unordered_map<std::string, SSL_CTX*> wildcard_;  // ".example.com" for "*.example.com"
  std::vector<unsigned char> alpn_;                     // wire format
  std::shared_ptr<TicketKeys> tickets_;
};

// The DNS names a certificate is valid for: its SAN DNS entries, else its CN.
std::vector<std::string> certificateNames(X509* cert);

}  // namespace crest::tls
