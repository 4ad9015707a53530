#include "tls/tls_context.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>

namespace crest::tls {
namespace {

// Mozilla "intermediate": ECDHE with AEAD ciphers for TLS 1.2 (TLS 1.3 suites are all AEAD).
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr const char* kGroups = "X25519:P-256:P-384";
constexpr unsigned char kSessionContext[] = "crest";

std::string opensslError() {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(code, buf, sizeof buf);
  return buf;
}

void addError(std::vector<conf::ConfigError>& errors, const std::string& file,
              const conf::TlsCertificate& c, const std::string& field, const std::string& msg) {
  errors.push_back(
      conf::ConfigError{file, c.mark.line, c.mark.column, c.field_path + "." + field, msg});
}

bool readable(const std::string& path, std::string& why) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    why = "cannot read " + path + ": " + std::strerror(errno);
    return false;
  }
  std::fclose(f);
  return true;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

SslCtxPtr newContext(const conf::TlsConfig& config) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) return nullptr;
  SSL_CTX* c = ctx.get();
  SSL_CTX_set_min_proto_version(c, config.min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION);
  // A client's FIN without close_notify is how most clients hang up: with
  // IGNORE_UNEXPECTED_EOF OpenSSL 3 reports it as a close, not an error, so
  // a client that half-closes after its request still gets the answer, as
  // over plain HTTP (HTTP framing, not TLS, tells a cut message).
  SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                             SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF);
  // Without tickets a TLS 1.3 client still gets one to resume with, holding
  // only an id of the session in the cache below.
  if (!config.session_tickets) SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
  // Release read and write buffers of idle connections; let a write resume
  // from a moved buffer (the proxy coalesces records from an evbuffer).
  SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                          SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_cipher_list(c, kTls12Ciphers);
  SSL_CTX_set1_groups_list(c, kGroups);
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_SERVER);
  SSL_CTX_set_session_id_context(c, kSessionContext, sizeof kSessionContext - 1);
  SSL_CTX_sess_set_cache_size(c, 20000);
  SSL_CTX_set_timeout(c, 12 * 3600);
  return ctx;
}

// Loads one certificate (with its chain) and its key into ctx.
bool addCertificate(SSL_CTX* ctx, const conf::TlsCertificate& c, const std::string& file,
                    std::vector<conf::ConfigError>& errors) {
  std::string why;
  bool ok = true;
  if (!readable(c.cert, why)) {
    addError(errors, file, c, "cert", why);
    ok = false;
  }
  if (!readable(c.key, why)) {
    addError(errors, file, c, "key", why);
    ok = false;
  }
  if (!ok) return false;
  if (SSL_CTX_use_certificate_chain_file(ctx, c.cert.c_str()) != 1) {
    addError(errors, file, c, "cert", "not a PEM certificate (" + opensslError() + ")");
    return false;
  }
  X509* leaf = SSL_CTX_get0_certificate(ctx);
  if (leaf != nullptr && X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0) {
    addError(errors, file, c, "cert", "certificate " + c.cert + " has expired");
    return false;
  }
  FILE* key_file = std::fopen(c.key.c_str(), "rb");
  EVP_PKEY* key = key_file ? PEM_read_PrivateKey(key_file, nullptr, nullptr, nullptr) : nullptr;
  if (key_file) std::fclose(key_file);
  if (key == nullptr) {
    addError(errors, file, c, "key", "not a PEM private key (" + opensslError() + ")");
    return false;
  }
  bool matches = leaf != nullptr && X509_check_private_key(leaf, key) == 1;
  ERR_clear_error();
  if (!matches || SSL_CTX_use_PrivateKey(ctx, key) != 1) {
    EVP_PKEY_free(key);
    addError(errors, file, c, "key", "key " + c.key + " does not match certificate " + c.cert);
    return false;
  }
  EVP_PKEY_free(key);
  return true;
}

}  // namespace

std::vector<std::string> certificateNames(X509* cert) {
  std::vector<std::string> names;
  auto* sans =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(sans, i);
      if (name->type != GEN_DNS) continue;
      const auto* data = ASN1_STRING_get0_data(name->d.dNSName);
      names.push_back(lower(std::string(reinterpret_cast<const char*>(data),
                                        static_cast<size_t>(ASN1_STRING_length(name->d.dNSName)))));
    }
    GENERAL_NAMES_free(sans);
  }
  if (names.empty()) {
    char cn[256];
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn) > 0) {
      names.push_back(lower(cn));
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

namespace {

// One configured certificate as SNI sees it.
struct CertificateInfo {
  std::vector<std::string> names;  // lower-case, "*.example.com" for wildcards
  int key_type = EVP_PKEY_NONE;    // OpenSSL serves one certificate per key type
};

bool wildcardCovers(const std::string& wildcard, const std::string& name) {
  size_t dot = name.find('.');
  return dot != std::string::npos && std::string_view(wildcard).substr(1) == name.substr(dot);
}

bool lists(const CertificateInfo& c, const std::string& name) {
  return std::find(c.names.begin(), c.names.end(), name) != c.names.end();
}

// The certificates offered for `name`: those that list it, then (for a
// plain name) those whose wildcard covers it, each in configuration order,
// at most one per key type. The client's signature algorithms pick among them.
std::vector<size_t> candidatesFor(const std::vector<CertificateInfo>& certs,
                                  const std::string& name) {
  std::vector<size_t> chosen;
  auto offer = [&](size_t i) {
    for (size_t c : chosen) {
      if (certs[c].key_type == certs[i].key_type) return;
    }
    chosen.push_back(i);
  };
  for (size_t i = 0; i < certs.size(); ++i) {
    if (lists(certs[i], name)) offer(i);
  }
  if (!name.starts_with("*.")) {
    for (size_t i = 0; i < certs.size(); ++i) {
      for (const auto& n : certs[i].names) {
        if (n.starts_with("*.") && wildcardCovers(n, name)) offer(i);
      }
    }
  }
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

}  // namespace

std::shared_ptr<const ServerTls> ServerTls::build(const conf::TlsConfig& config,
                                                  std::shared_ptr<TicketKeys> tickets,
                                                  const std::string& config_file,
                                                  std::vector<conf::ConfigError>& errors) {
  auto tls = std::shared_ptr<ServerTls>(new ServerTls());
  tls->tickets_ = std::move(tickets);
  for (const auto& proto : config.alpn) {
    tls->alpn_.push_back(static_cast<unsigned char>(proto.size()));
    tls->alpn_.insert(tls->alpn_.end(), proto.begin(), proto.end());
  }
  // Each certificate is loaded once on its own, so that each problem is
  // reported once; that context serves the names only it covers.
  size_t errors_before = errors.size();
  std::vector<CertificateInfo> certs(config.certificates.size());
  std::vector<SslCtxPtr> alone(config.certificates.size());
  for (size_t i = 0; i < config.certificates.size(); ++i) {
    const auto& c = config.certificates[i];
    alone[i] = newContext(config);
    if (!alone[i]) {
      errors.push_back({config_file, c.mark.line, c.mark.column, c.field_path,
                        "cannot create a TLS context: " + opensslError()});
      continue;
    }
    if (!addCertificate(alone[i].get(), c, config_file, errors)) continue;
    X509* leaf = SSL_CTX_get0_certificate(alone[i].get());
    certs[i].names = certificateNames(leaf);
    certs[i].key_type = EVP_PKEY_get_base_id(X509_get0_pubkey(leaf));
  }
  if (errors.size() != errors_before || certs.empty()) return nullptr;

  // One context per distinct set of candidates: names served by the same
  // certificates share it.
  std::map<std::vector<size_t>, SSL_CTX*> by_candidates;
  auto contextOf = [&](const std::vector<size_t>& candidates) -> SSL_CTX* {
    auto found = by_candidates.find(candidates);
    if (found != by_candidates.end()) return found->second;
    SslCtxPtr ctx;
    if (candidates.size() == 1) {
      ctx = std::move(alone[candidates[0]]);
    } else {
      ctx = newContext(config);
      for (size_t i : candidates)
        addCertificate(ctx.get(), config.certificates[i], config_file, errors);
    }
    SSL_CTX* raw = ctx.get();
    tls->contexts_.push_back(std::move(ctx));
    by_candidates.emplace(candidates, raw);
    return raw;
  };
  // Without SNI, or for a name no certificate covers: the first certificate
  // of each key type.
  std::vector<size_t> defaults;
  for (size_t i = 0; i < certs.size(); ++i) {
    bool type_taken = std::any_of(defaults.begin(), defaults.end(),
                                  [&](size_t d) { return certs[d].key_type == certs[i].key_type; });
    if (!type_taken) defaults.push_back(i);
  }
  tls->default_ = contextOf(defaults);
  for (const auto& c : certs) {
    for (const auto& n : c.names) {
      bool wildcard = n.starts_with("*.");
      auto& table = wildcard ? tls->wildcard_ : tls->exact_;
      std::string key = wildcard ? n.substr(1) : n;
      if (!table.count(key)) table.emplace(key, contextOf(candidatesFor(certs, n)));
    }
  }
  if (errors.size() != errors_before) return nullptr;
  for (auto& ctx : tls->contexts_) {
    SSL_CTX_set_app_data(ctx.get(), tls.get());
    SSL_CTX_set_tlsext_servername_callback(ctx.get(), &ServerTls::onServerName);
    SSL_CTX_set_tlsext_servername_arg(ctx.get(), tls.get());
    SSL_CTX_set_alpn_select_cb(ctx.get(), &ServerTls::onAlpn, tls.get());
    if (config.session_tickets)
      SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx.get(), &ServerTls::onTicket);
  }
  return tls;
}

SSL* ServerTls::newSession() const {
  return SSL_new(default_);
}

SSL_CTX* ServerTls::contextFor(const std::string& server_name) const {
  std::string name = lower(server_name);
  auto exact = exact_.find(name);
  if (exact != exact_.end()) return exact->second;
  size_t dot = name.find('.');
  if (dot != std::string::npos) {
    auto wild = wildcard_.find(name.substr(dot));
    if (wild != wildcard_.end()) return wild->second;
  }
  return default_;
}

int ServerTls::onServerName(SSL* ssl, int*, void* arg) {
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr) return SSL_TLSEXT_ERR_NOACK;
  SSL_CTX* ctx = static_cast<const ServerTls*>(arg)->contextFor(name);
  if (ctx != SSL_get_SSL_CTX(ssl)) SSL_set_SSL_CTX(ssl, ctx);
  return SSL_TLSEXT_ERR_OK;
}

int ServerTls::onAlpn(SSL*, const unsigned char** out, unsigned char* outlen,
                      const unsigned char* in, unsigned int inlen, void* arg) {
  const auto* self = static_cast<const ServerTls*>(arg);
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, self->alpn_.data(),
                            static_cast<unsigned int>(self->alpn_.size()), in,
                            inlen) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;  // no common protocol: carry on without ALPN
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

int ServerTls::onTicket(SSL* ssl, unsigned char* key_name, unsigned char* iv,
                        EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, int encrypt) {
  auto* self = static_cast<const ServerTls*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  return self->tickets_->onTicket(key_name, iv, cipher, mac, encrypt);
}

}  // namespace crest::tls
