// The mqtt: section of presenced.yaml (docs/configuration.md "mqtt"), under the config's own key
// names from the file to the Paho connection (issue 12: app::MqttConfig and ingest::MqttOptions
// were two structs for the same keys, bridged by a field-by-field copy). Plain data, no Paho.
#pragma once

#include <chrono>
#include <string>

#include "presence/core/time.h"

namespace presence::ingest {

struct MqttTlsConfig {
  std::string ca_file;    // empty = system trust store
  bool verify = true;     // verify the broker certificate and host name
  std::string cert_file;  // client certificate (mutual TLS); empty = none
  std::string key_file;   // client key; required when cert_file is set
};

struct MqttReconnectConfig {
  // Exponential backoff with jitter after losing the broker. Jitter spreads reconnects of many
  // presenced/clients so a broker restart is not met by a synchronized storm (post-mortem 000).
  core::Duration min_backoff{std::chrono::seconds(1)};
  core::Duration max_backoff{std::chrono::seconds(30)};
  double jitter = 0.2;  // +/- share of the backoff, in [0, 1]
};

enum class MqttProtocol { v3_1_1, v5 };

struct MqttConfig {
  std::string uri = "tcp://127.0.0.1:1883";  // tcp://, mqtt://, ssl://, mqtts://, ws://, wss://
  // Empty in the file means "presenced-<hostname>"; the loader fills it in, so after a successful
  // load client_id is never empty.
  std::string client_id;
  MqttProtocol protocol = MqttProtocol::v3_1_1;
  // false: the broker keeps presenced's subscriptions and queues QoS>=1 last-wills while
  // presenced restarts, so no offline event is lost across a presenced restart (post-mortem 001).
  bool clean_session = false;
  core::Duration keepalive{std::chrono::seconds(30)};
  std::string username;
  std::string password;  // use ${VAR} substitution to keep it out of the file
  MqttTlsConfig tls;
  MqttReconnectConfig reconnect;
  int qos = 1;  // subscription QoS, 0..2
  // Heartbeats on a second, subscribe-only plain-TCP connection read in bulk (bulk_reader.h,
  // issue 16: Paho's per-message receive cost was most of presenced's CPU). Only with a tcp:// or
  // mqtt:// uri; otherwise, or when false, heartbeats come through Paho with everything else.
  bool bulk_heartbeats = true;
};

// The sparkplug: section (issue 15, docs/sparkplug.md), as the MQTT link takes it.
struct SparkplugConfig {
  bool enabled = false;      // subscribe to spBv1.0/# and read edge nodes, devices and STATE
  std::string primary_host;  // host_id of the primary host application ("" = none)
  bool rebirth = false;      // ask an edge node whose NBIRTH was missed for a rebirth (NCMD)
  core::Duration rebirth_interval{std::chrono::seconds(60)};  // at most one request per node per interval
  bool operator==(const SparkplugConfig&) const = default;
};

}  // namespace presence::ingest
