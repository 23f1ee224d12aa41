// presenced's broker connection options end to end (issue 3): TLS with verification on by
// default, mutual TLS, username/password, MQTT 5. Certificates are made per run with openssl.
#include <doctest/doctest.h>

#include <filesystem>

#include "test/integration/service/harness.h"

using namespace presence::itest;
using presence::test::Mosquitto;
using presence::test::Process;
using presence::test::TempDir;

namespace {

// Mosquitto started as root drops to the "mosquitto" user before it reads certificates and the
// password file: make the (throwaway, per-test) files readable.
void open_up(const TempDir& dir) {
  namespace fs = std::filesystem;
  fs::permissions(dir.path(), fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                  fs::perms::others_read | fs::perms::others_exec);
  for (const auto& e : fs::directory_iterator(dir.path()))
    fs::permissions(e.path(), fs::perms::owner_read | fs::perms::owner_write |
                                  fs::perms::group_read | fs::perms::others_read);
}

int run(const std::vector<std::string>& argv, const std::string& log) {
  Process p(argv, log);
  return p.wait_exit(20000ms);
}

// A CA, a server certificate for 127.0.0.1 and a client certificate, all P-256.
struct Pki {
  TempDir dir;
  std::string log = dir.file("openssl.log");
  std::string ca_crt = dir.file("ca.crt"), ca_key = dir.file("ca.key");
  std::string other_ca_crt = dir.file("other-ca.crt"), other_ca_key = dir.file("other-ca.key");
  std::string server_crt = dir.file("server.crt"), server_key = dir.file("server.key");
  std::string client_crt = dir.file("client.crt"), client_key = dir.file("client.key");

  Pki() {
    const std::string openssl = presence::test::find_program("openssl");
    REQUIRE_FALSE(openssl.empty());
    auto ca = [&](const std::string& crt, const std::string& key, const std::string& cn) {
      REQUIRE(run({openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                   "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", crt, "-days",
                   "2", "-subj", "/CN=" + cn},
                  log) == 0);
    };
    ca(ca_crt, ca_key, "presence test CA");
    ca(other_ca_crt, other_ca_key, "someone else's CA");
    const std::string ext = dir.write("san.cnf", "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
    auto leaf = [&](const std::string& crt, const std::string& key, const std::string& cn,
                    bool server) {
      const std::string csr = crt + ".csr";
      REQUIRE(run({openssl, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                   "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=" + cn},
                  log) == 0);
      std::vector<std::string> sign{openssl, "x509", "-req", "-in", csr, "-CA", ca_crt,
                                    "-CAkey", ca_key, "-CAcreateserial", "-out", crt, "-days", "2"};
      if (server) {
        sign.push_back("-extfile");
        sign.push_back(ext);
      }
      REQUIRE(run(sign, log) == 0);
    };
    leaf(server_crt, server_key, "127.0.0.1", true);
    leaf(client_crt, client_key, "presenced", false);
    open_up(dir);
  }

  std::string broker_conf(bool require_client_cert) const {
    return "cafile " + ca_crt + "\ncertfile " + server_crt + "\nkeyfile " + server_key + "\n" +
           (require_client_cert ? "require_certificate true\n" : "");
  }
};

std::string ssl_uri(const Mosquitto& b) { return "ssl://127.0.0.1:" + std::to_string(b.port()); }

bool log_has(Presenced& p, const std::string& text) {
  return p.log().find(text) != std::string::npos;
}

}  // namespace

TEST_CASE("TLS: verified against the configured CA") {
  Pki pki;
  Mosquitto broker(pki.broker_conf(false));
  broker.start();
  PresencedOptions o;
  o.uri = ssl_uri(broker);
  o.mqtt_extra = "  tls:\n    ca_file: " + pki.ca_crt + "\n";
  Presenced presenced(broker.port(), o);
  presenced.start();  // throws unless /readyz turns 200
  REQUIRE(run({presence::test::find_program("mosquitto_pub"), "-h", "127.0.0.1", "-p",
               std::to_string(broker.port()), "--cafile", pki.ca_crt, "-t", "devices/t1/status",
               "-m", "online"},
              pki.log) == 0);
  CHECK(wait_for([&] { return presenced.metric("presence_devices{state=\"online\"}") == 1; }, 5s));
}

TEST_CASE("TLS: verification is on by default, a broker signed by another CA is refused") {
  Pki pki;
  Mosquitto broker(pki.broker_conf(false));
  broker.start();
  PresencedOptions o;
  o.uri = ssl_uri(broker);
  o.mqtt_extra = "  tls:\n    ca_file: " + pki.other_ca_crt + "\n";
  Presenced presenced(broker.port(), o);
  presenced.launch();
  REQUIRE(wait_for([&] { return log_has(presenced, "cannot connect"); }, 10s));
  CHECK(presenced.status("/readyz") == 503);
  CHECK(presenced.status("/healthz") == 200);
  CHECK(presenced.running());
}

TEST_CASE("mutual TLS: the client certificate is presented") {
  Pki pki;
  Mosquitto broker(pki.broker_conf(true));
  broker.start();
  SUBCASE("without a client certificate the broker refuses") {
    PresencedOptions o;
    o.uri = ssl_uri(broker);
    o.mqtt_extra = "  tls:\n    ca_file: " + pki.ca_crt + "\n";
    Presenced presenced(broker.port(), o);
    presenced.launch();
    REQUIRE(wait_for([&] { return log_has(presenced, "cannot connect"); }, 10s));
    CHECK(presenced.status("/readyz") == 503);
  }
  SUBCASE("with cert_file and key_file it is ready") {
    PresencedOptions o;
    o.uri = ssl_uri(broker);
    o.mqtt_extra = "  tls:\n    ca_file: " + pki.ca_crt + "\n    cert_file: " + pki.client_crt +
                   "\n    key_file: " + pki.client_key + "\n";
    Presenced presenced(broker.port(), o);
    presenced.start();
    CHECK(presenced.metric("presence_broker_connected") == 1);
  }
}

TEST_CASE("username and password") {
  TempDir dir;
  const std::string passwd = dir.file("passwd");
  REQUIRE(run({presence::test::find_program("mosquitto_passwd"), "-b", "-c", passwd, "presenced",
               "s3cret"},
              dir.file("passwd.log")) == 0);
  open_up(dir);
  Mosquitto broker("password_file " + passwd + "\n", /*allow_anonymous=*/false);
  broker.start();
  SUBCASE("right password: ready") {
    PresencedOptions o;
    o.mqtt_extra = "  username: presenced\n  password: s3cret\n";
    Presenced presenced(broker.port(), o);
    presenced.start();
    CHECK(presenced.metric("presence_broker_connected") == 1);
  }
  SUBCASE("wrong password: refused, retried with backoff, never ready") {
    PresencedOptions o;
    o.mqtt_extra = "  username: presenced\n  password: wrong\n";
    Presenced presenced(broker.port(), o);
    presenced.launch();
    REQUIRE(wait_for([&] { return log_has(presenced, "cannot connect"); }, 10s));
    CHECK(presenced.status("/readyz") == 503);
    CHECK(presenced.metric("presence_mqtt_connects_total") == 0);
  }
}

TEST_CASE("MQTT 5: connect, subscribe, birth -> online") {
  Mosquitto broker;
  broker.start();
  PresencedOptions o;
  o.mqtt_extra = "  protocol: \"5\"\n";
  Presenced presenced(broker.port(), o);
  presenced.start();
  Observer obs(broker.uri());
  mqtt_pub(broker.port(), "devices/v5/status", "online", true);
  CHECK(obs.wait_state("v5", "online"));
  // Persistent MQTT 5 session too (clean_start off, session expiry set).
  presenced.stop();
  PresencedOptions p = o;
  p.clean_session = false;
  Presenced persistent(broker.port(), p);
  persistent.start();
  mqtt_pub(broker.port(), "devices/v5b/status", "online");
  CHECK(obs.wait_state("v5b", "online"));
}
