#include "tls/tls_context.h"

#include <openssl/pem.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "test/support/self_signed.h"

using namespace crest;

namespace {

// A scratch folder with certificates made by the openssl command line.
struct CertDir {
  std::string path;
  CertDir() {
    char tmpl[] = "/tmp/crest-tls-test-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~CertDir() { std::filesystem::remove_all(path); }
  // A self-signed certificate and key named `name`, made by the openssl command.
  void make(const std::string& name, const std::string& key_spec) {
    std::string cmd = "openssl req -x509 -newkey " + key_spec + " -nodes -keyout " + path + "/" +
                      name + ".key -out " + path + "/" + name + ".pem -subj /CN=" + name +
                      " -days 30 2>/dev/null";
    REQUIRE(std::system(cmd.c_str()) == 0);
  }
  // A certificate that expired yesterday (the openssl command cannot backdate one).
  void makeExpired(const std::string& name) {
    test::SelfSigned expired(name, -30, -1);
    FILE* f = std::fopen((path + "/" + name + ".pem").c_str(), "w");
    PEM_write_X509(f, expired.cert);
    std::fclose(f);
    f = std::fopen((path + "/" + name + ".key").c_str(), "w");
    PEM_write_PrivateKey(f, expired.key, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
  }
  conf::TlsCertificate cert(const std::string& cert, const std::string& key) const {
    return conf::TlsCertificate{
        path + "/" + cert, path + "/" + key, {7, 11}, "listeners[0].tls.certificates[0]"};
  }
};

}  // namespace

TEST_CASE("tls: RSA and ECDSA certificates load") {
  CertDir dir;
  dir.make("rsa", "rsa:2048");
  dir.make("ec", "ec -pkeyopt ec_paramgen_curve:P-256");
  conf::TlsConfig tls;
  tls.certificates = {dir.cert("rsa.pem", "rsa.key"), dir.cert("ec.pem", "ec.key")};
  std::vector<conf::ConfigError> errors;
  auto ctx = tls::ServerTls::build(tls, std::make_shared<tls::TicketKeys>(), "crest.yaml", errors);
  CHECK(errors.empty());
  CHECK(ctx != nullptr);
}

TEST_CASE("tls: session tickets can be turned off") {
  CertDir dir;
  dir.make("ec", "ec -pkeyopt ec_paramgen_curve:P-256");
  conf::TlsConfig tls;
  tls.certificates = {dir.cert("ec.pem", "ec.key")};
  auto ticketsOff = [&](bool session_tickets) {
    tls.session_tickets = session_tickets;
    std::vector<conf::ConfigError> errors;
    auto ctx =
        tls::ServerTls::build(tls, std::make_shared<tls::TicketKeys>(), "crest.yaml", errors);
    REQUIRE(ctx != nullptr);
    SSL* ssl = ctx->newSession();
    bool off = (SSL_get_options(ssl) & SSL_OP_NO_TICKET) != 0;
    SSL_free(ssl);
    return off;
  };
  CHECK_FALSE(ticketsOff(true));
  CHECK(ticketsOff(false));
}

TEST_CASE("tls: a missing file names the field and the path") {
  CertDir dir;
  conf::TlsConfig tls;
  tls.certificates = {dir.cert("none.pem", "none.key")};
  std::vector<conf::ConfigError> errors;
  CHECK(tls::ServerTls::build(tls, std::make_shared<tls::TicketKeys>(), "crest.yaml", errors) ==
        nullptr);
  REQUIRE(errors.size() == 2);
  CHECK(errors[0].format() ==
        "crest.yaml:7:11: listeners[0].tls.certificates[0].cert: cannot read " + dir.path +
            "/none.pem: No such file or directory");
  CHECK(errors[1].field == "listeners[0].tls.certificates[0].key");
}

TEST_CASE("tls: a key that does not match its certificate is refused") {
  CertDir dir;
  dir.make("one", "rsa:2048");
  dir.make("two", "rsa:2048");
  conf::TlsConfig tls;
  tls.certificates = {dir.cert("one.pem", "two.key")};
  std::vector<conf::ConfigError> errors;
  CHECK(tls::ServerTls::build(tls, std::make_shared<tls::TicketKeys>(), "crest.yaml", errors) ==
        nullptr);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].message.find("does not match certificate") != std::string::npos);
}

TEST_CASE("tls: an expired certificate is refused") {
  CertDir dir;
  dir.makeExpired("old");
  conf::TlsConfig tls;
  tls.certificates = {dir.cert("old.pem", "old.key")};
  std::vector<conf::ConfigError> errors;
  CHECK(tls::ServerTls::build(tls, std::make_shared<tls::TicketKeys>(), "crest.yaml", errors) ==
        nullptr);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].message.find("has expired") != std::string::npos);
}

TEST_CASE("tls: a file that is not PEM is refused") {
  CertDir dir;
  REQUIRE(std::system(("echo garbage > " + dir.path + "/bad.pem && cp " + dir.path + "/bad.pem " +
                       dir.path + "/bad.key")
                          .c_str()) == 0);
  conf::TlsConfig tls;
  tls.certificates = {dir.cert("bad.pem", "bad.key")};
  std::vector<conf::ConfigError> errors;
  CHECK(tls::ServerTls::build(tls, std::make_shared<tls::TicketKeys>(), "crest.yaml", errors) ==
        nullptr);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].message.find("not a PEM certificate") == 0);
}
