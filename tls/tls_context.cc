#include "tls/tls_context.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace crest::tls {
namespace {

// Mozilla "intermediate": ECDHE with AEAD ciphers for TLS 1.2.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

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

// Loads one certificate (with its chain) and key into ctx; false with errors.
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

SslCtxPtr buildServerContext(const conf::TlsConfig& tls, const std::string& config_file,
                             std::vector<conf::ConfigError>& errors) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) {
    errors.push_back(
        conf::ConfigError{config_file, 0, 0, "", "cannot create TLS context: " + opensslError()});
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(ctx.get(),
                                tls.min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION);
  SSL_CTX_set_options(
      ctx.get(), SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_cipher_list(ctx.get(), kTls12Ciphers);
  size_t before = errors.size();
  for (const auto& c : tls.certificates) addCertificate(ctx.get(), c, config_file, errors);
  if (errors.size() != before) return nullptr;
  return ctx;
}

}  // namespace crest::tls
