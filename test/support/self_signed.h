#pragma once
// A self-signed P-256 certificate made in memory, for tests that need one
// the openssl command cannot make (backdated) or that need no files at all.

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <string>

namespace crest::test {

struct SelfSigned {
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;

  // Valid from `from_days` to `until_days` relative to now, for /CN=`name`.
  SelfSigned(const std::string& name, long from_days, long until_days)
      : key(EVP_EC_gen("P-256")), cert(X509_new()) {
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), from_days * 86400);
    X509_gmtime_adj(X509_getm_notAfter(cert), until_days * 86400);
    X509_set_pubkey(cert, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(name.c_str()), -1, -1, 0);
    X509_set_issuer_name(cert, X509_get_subject_name(cert));
    X509_sign(cert, key, EVP_sha256());
  }
  ~SelfSigned() {
    X509_free(cert);
    EVP_PKEY_free(key);
  }
  SelfSigned(const SelfSigned&) = delete;
  SelfSigned& operator=(const SelfSigned&) = delete;
};

}  // namespace crest::test
