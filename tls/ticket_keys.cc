#include "tls/ticket_keys.h"

#include <openssl/core_names.h>
#include <openssl/rand.h>

#include <cstring>

namespace crest::tls {

TicketKeys::TicketKeys() : current_(generate()), previous_() {}

TicketKeys::Key TicketKeys::generate() {
  Key k;
  RAND_bytes(k.name, sizeof k.name);
  RAND_bytes(k.aes, sizeof k.aes);
  RAND_bytes(k.hmac, sizeof k.hmac);
  return k;
}

void TicketKeys::rotate() {
  Key fresh = generate();
  std::lock_guard<std::mutex> lock(mutex_);
  previous_ = current_;
  has_previous_ = true;
  current_ = fresh;
}

bool TicketKeys::useKey(const Key& key, unsigned char* iv, EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac,
                        bool encrypt) {
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, const_cast<unsigned char*>(key.hmac),
                                        sizeof key.hmac),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
      OSSL_PARAM_construct_end(),
  };
  if (EVP_MAC_CTX_set_params(mac, params) != 1) return false;
  return encrypt ? EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key.aes, iv) == 1
                 : EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key.aes, iv) == 1;
}

int TicketKeys::onTicket(unsigned char* key_name, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                         EVP_MAC_CTX* mac, int encrypt) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (encrypt) {
    std::memcpy(key_name, current_.name, sizeof current_.name);
    if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1) return -1;
    return useKey(current_, iv, cipher, mac, true) ? 1 : -1;
  }
  if (std::memcmp(key_name, current_.name, sizeof current_.name) == 0) {
    return useKey(current_, iv, cipher, mac, false) ? 1 : -1;
  }
  if (has_previous_ && std::memcmp(key_name, previous_.name, sizeof previous_.name) == 0) {
    // Valid, but issued under the previous key: accept and ask for a new ticket.
    return useKey(previous_, iv, cipher, mac, false) ? 2 : -1;
  }
  return 0;  // unknown key: a full handshake
}

}  // namespace crest::tls
