#pragma once
// Session ticket keys shared by every TLS context of the process, so a ticket
// issued by one worker resumes on any other, and across reloads. rotate()
// makes a fresh key current and keeps the one before it for decryption, so
// tickets resume for up to two rotation periods. Thread-safe: handshakes on
// all workers use it, the main thread rotates it.

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <mutex>

namespace crest::tls {

class TicketKeys {
 public:
  TicketKeys();
  void rotate();

  // The body of OpenSSL's ticket key callback (SSL_CTX_set_tlsext_ticket_key_evp_cb).
  int onTicket(unsigned char* key_name, unsigned char* iv, EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac,
               int encrypt);

 private:
  struct Key {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
  };
  static Key generate();
  static bool useKey(const Key& key, unsigned char* iv, EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac,
                     bool encrypt);

  std::mutex mutex_;
  Key current_;
  Key previous_;
  bool has_previous_ = false;
};

}  // namespace crest::tls
