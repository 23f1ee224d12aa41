// mosquitto_presence.so: the thin C-ABI shim between Mosquitto 2.0's plugin API (version 5) and
// PresenceExt (STYLE.md habit 5, after Mosquitto's plugins/message-timestamp): plugin id in a
// static, every mosquitto_callback_register checked, the same triples unregistered in cleanup,
// ids copied out of struct mosquitto at once, events published with
// mosquitto_broker_publish_copy. All decisions live in presence_ext.cpp (unit-tested).
#include <sys/random.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

// The module is built with hidden visibility; only the declarations from the Mosquitto headers
// (our three entry points among them) are exported.
#pragma GCC visibility push(default)
extern "C" {
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
}
#pragma GCC visibility pop

#include "broker-ext/presence_ext.h"

// mosquitto.h (libmosquitto-dev) is not part of mosquitto-dev; these values are the 2.0 ABI
// (include/mosquitto.h of 2.0.11) and cannot change without breaking every plugin.
namespace mosq {
constexpr int err_success = 0;
constexpr int err_nomem = 1;
constexpr int err_inval = 3;
constexpr int err_auth = 11;
constexpr int err_plugin_defer = 17;
constexpr int log_info = 1 << 0;
constexpr int log_notice = 1 << 1;
constexpr int log_warning = 1 << 2;
constexpr int log_err = 1 << 3;
}  // namespace mosq

#ifndef PRESENCE_EXT_VERSION
#define PRESENCE_EXT_VERSION "0.0.0"
#endif
#ifndef PRESENCE_MOSQUITTO_VERSION
#define PRESENCE_MOSQUITTO_VERSION "2.0"
#endif

namespace {

using presence::broker_ext::AuthVerdict;
using presence::broker_ext::BasicAuth;
using presence::broker_ext::ClientInfo;
using presence::broker_ext::LogLevel;
using presence::broker_ext::Now;
using presence::broker_ext::Output;
using presence::broker_ext::PresenceExt;

mosquitto_plugin_id_t* g_pid = nullptr;
std::unique_ptr<PresenceExt> g_ext;
int g_qos = 1;
bool g_basic_auth = false;
std::int64_t g_last_error_log_ms = -1000000;

Now now() {
  timespec mono{}, real{};
  clock_gettime(CLOCK_MONOTONIC, &mono);
  clock_gettime(CLOCK_REALTIME, &real);
  return Now{static_cast<std::int64_t>(mono.tv_sec) * 1000 + mono.tv_nsec / 1000000,
             static_cast<std::int64_t>(real.tv_sec) * 1000 + real.tv_nsec / 1000000};
}

void log_line(int level, const std::string& text) {
  mosquitto_log_printf(level, "presence: %s", text.c_str());
}

// Rate-limited: an error inside a callback must not flood the log (issue 4 / habit 7).
void log_error_limited(const std::string& text) {
  const Now n = now();
  if (n.mono_ms - g_last_error_log_ms < 10000) return;
  g_last_error_log_ms = n.mono_ms;
  log_line(mosq::log_err, text);
}

void emit(Output& out) {
  for (auto& m : out.messages) {
    const int rc = mosquitto_broker_publish_copy(nullptr, m.topic.c_str(),
                                                 static_cast<int>(m.payload.size()),
                                                 m.payload.data(), m.qos >= 0 ? m.qos : g_qos,
                                                 m.retain, nullptr);
    if (rc != mosq::err_success) {
      g_ext->note_publish_error();
      log_error_limited("mosquitto_broker_publish_copy failed (rc " + std::to_string(rc) +
                        ") for topic of " + std::to_string(m.topic.size()) + " bytes");
    }
  }
  for (auto& l : out.logs) {
    int level = mosq::log_info;
    switch (l.level) {
      case LogLevel::info: level = mosq::log_info; break;
      case LogLevel::notice: level = mosq::log_notice; break;
      case LogLevel::warning: level = mosq::log_warning; break;
      case LogLevel::error: level = mosq::log_err; break;
    }
    log_line(level, l.text);
  }
}

std::string copy_or_empty(const char* s) { return s ? std::string(s) : std::string(); }

int on_basic_auth(int, void* event_data, void*) {
  if (!g_ext) return mosq::err_plugin_defer;  // never after cleanup; neutral if it were
  try {
    auto* ed = static_cast<mosquitto_evt_basic_auth*>(event_data);
    const char* id = mosquitto_client_id(ed->client);
    if (id == nullptr) return mosq::err_plugin_defer;  // cannot happen in 2.0.11; stay neutral
    ClientInfo info;
    info.client_id = id;  // copied at once: the broker frees it on refusal
    if (const char* u = mosquitto_client_username(ed->client)) info.username = std::string(u);
    info.address = copy_or_empty(mosquitto_client_address(ed->client));
    info.protocol_version = mosquitto_client_protocol_version(ed->client);
    info.keepalive = mosquitto_client_keepalive(ed->client);
    info.clean_start = mosquitto_client_clean_session(ed->client);
    Output out;
    const AuthVerdict v = g_ext->on_basic_auth(ed->client, info, now(), out);
    emit(out);
    // Never MOSQ_ERR_SUCCESS: the plugin only ever defers (the broker's own checks decide) or,
    // for storm protection, refuses. It cannot grant access (docs/broker-ext.md).
    return v == AuthVerdict::refuse ? mosq::err_auth : mosq::err_plugin_defer;
  } catch (const std::exception& e) {
    log_error_limited(std::string("basic_auth: ") + e.what());
  } catch (...) {
    log_error_limited("basic_auth: unknown exception");
  }
  return mosq::err_plugin_defer;
}

int on_disconnect(int, void* event_data, void*) {
  if (!g_ext) return mosq::err_success;
  try {
    auto* ed = static_cast<mosquitto_evt_disconnect*>(event_data);
    const char* id = mosquitto_client_id(ed->client);
    Output out;
    g_ext->on_disconnect(ed->client, id, now(), out);
    emit(out);
  } catch (const std::exception& e) {
    log_error_limited(std::string("disconnect: ") + e.what());
  } catch (...) {
    log_error_limited("disconnect: unknown exception");
  }
  return mosq::err_success;
}

// MOSQ_EVT_MESSAGE, registered only with heartbeat_topic set. Mosquitto 2.0.11 calls it for
// every PUBLISH a client sends, after the broker's ACL check (handle_publish.c), before the
// message is stored and delivered. Always MOSQ_ERR_SUCCESS and the message is never touched:
// the heartbeat still reaches its subscribers. Nothing is allocated for other topics.
int on_message(int, void* event_data, void*) {
  if (!g_ext) return mosq::err_success;
  try {
    auto* ed = static_cast<mosquitto_evt_message*>(event_data);
    if (ed->topic == nullptr) return mosq::err_success;
    Output out;
    g_ext->on_message(ed->topic, out);
    if (!out.messages.empty()) emit(out);
  } catch (const std::exception& e) {
    log_error_limited(std::string("message: ") + e.what());
  } catch (...) {
    log_error_limited("message: unknown exception");
  }
  return mosq::err_success;
}

// MOSQ_EVT_CONTROL on kClientsRequestTopic: presenced asks who is connected (issue 14). The
// request is consumed by the broker (a $CONTROL topic reaches no subscriber).
int on_control(int, void* event_data, void*) {
  if (!g_ext) return mosq::err_success;
  try {
    (void)event_data;
    Output out;
    g_ext->on_clients_request(now(), out);
    emit(out);
  } catch (const std::exception& e) {
    log_error_limited(std::string("control: ") + e.what());
  } catch (...) {
    log_error_limited("control: unknown exception");
  }
  return mosq::err_success;
}

int on_tick(int, void*, void*) {
  // The tick's now_s/now_ns are not filled in by 2.0.11 (plugin.c): read our own clock.
  if (!g_ext) return mosq::err_success;
  try {
    Output out;
    g_ext->on_tick(now(), out, [](const void* conn) {
      return mosquitto_client_id(static_cast<const mosquitto*>(conn)) != nullptr;
    });
    emit(out);
  } catch (const std::exception& e) {
    log_error_limited(std::string("tick: ") + e.what());
  } catch (...) {
    log_error_limited("tick: unknown exception");
  }
  return mosq::err_success;
}

struct Registration {
  int event;
  MOSQ_FUNC_generic_callback cb;
  bool registered;
  const char* event_data = nullptr;  // MOSQ_EVT_CONTROL: the topic; the same on unregister
};
std::vector<Registration> g_regs;

void unregister_all() {
  for (auto& r : g_regs) {
    if (r.registered) mosquitto_callback_unregister(g_pid, r.event, r.cb, r.event_data);
    r.registered = false;
  }
  g_regs.clear();
}

std::string boot_id() {
  unsigned char b[16] = {};
  std::size_t got = 0;
  while (got < sizeof b) {
    const ssize_t n = getrandom(b + got, sizeof b - got, 0);
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (got < sizeof b) {
    // No entropy source: still unique per process start, which is what presenced needs.
    const Now n = now();
    std::snprintf(reinterpret_cast<char*>(b), sizeof b, "%lx%x", static_cast<long>(n.unix_ms),
                  static_cast<unsigned>(getpid()));
  }
  static const char hex[] = "0123456789abcdef";
  std::string s;
  for (unsigned char c : b) {
    s.push_back(hex[c >> 4]);
    s.push_back(hex[c & 0xF]);
  }
  return s;
}

}  // namespace

extern "C" {

int mosquitto_plugin_version(int supported_version_count, const int* supported_versions) {
  for (int i = 0; i < supported_version_count; ++i) {
    if (supported_versions[i] == 5) return 5;
  }
  return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t* identifier, void** userdata,
                          struct mosquitto_opt* options, int option_count) {
  (void)userdata;
  try {
    g_pid = identifier;
    std::vector<std::pair<std::string, std::string>> kv;
    for (int i = 0; i < option_count; ++i) {
      kv.emplace_back(copy_or_empty(options[i].key), copy_or_empty(options[i].value));
    }
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';

    auto parsed = presence::broker_ext::parse_options(kv, host);
    if (!parsed.options) {
      for (const auto& e : parsed.errors) log_line(mosq::log_err, "config error: " + e);
      log_line(mosq::log_err, "refusing to load (see docs/broker-ext.md)");
      return mosq::err_inval;
    }
    const auto& o = *parsed.options;
    for (const auto& line : parsed.info) log_line(mosq::log_info, line);
    if (o.basic_auth == BasicAuth::defer) {
      log_line(mosq::log_notice,
               "basic_auth defer: this plugin joins the auth chain and only defers or (storm "
               "protection) refuses. With no password_file and no auth plugin, clients that "
               "send a username are refused by Mosquitto 2.0 even if allow_anonymous is true");
    } else {
      log_line(mosq::log_notice,
               "basic_auth off: no connected events and no storm protection; disconnected, "
               "boot and heartbeat only");
    }

    g_qos = o.qos;
    g_basic_auth = o.basic_auth == BasicAuth::defer;
    const Now n = now();
    g_ext = std::make_unique<PresenceExt>(o, boot_id(), PRESENCE_EXT_VERSION,
                                          PRESENCE_MOSQUITTO_VERSION, n);

    g_regs = {{MOSQ_EVT_DISCONNECT, on_disconnect, false}, {MOSQ_EVT_TICK, on_tick, false}};
    if (g_basic_auth) g_regs.push_back({MOSQ_EVT_BASIC_AUTH, on_basic_auth, false});
    // Only with aggregation on: otherwise the broker does not call us for every PUBLISH.
    if (o.aggregation()) g_regs.push_back({MOSQ_EVT_MESSAGE, on_message, false});
    g_regs.push_back({MOSQ_EVT_CONTROL, on_control, false, presence::broker_ext::kClientsRequestTopic});
    for (auto& r : g_regs) {
      const int rc = mosquitto_callback_register(g_pid, r.event, r.cb, r.event_data, nullptr);
      if (rc != mosq::err_success) {
        log_line(mosq::log_err, "mosquitto_callback_register(event " + std::to_string(r.event) +
                                    ") failed: rc " + std::to_string(rc));
        unregister_all();
        g_ext.reset();
        return rc;
      }
      r.registered = true;
    }

    Output out;
    out.messages.push_back(g_ext->boot_message());
    emit(out);
    log_line(mosq::log_info, "loaded, publishing under " + o.topic_prefix);
    return mosq::err_success;
  } catch (const std::exception& e) {
    log_line(mosq::log_err, std::string("init failed: ") + e.what());
  } catch (...) {
    log_line(mosq::log_err, "init failed: unknown exception");
  }
  unregister_all();
  g_ext.reset();
  return mosq::err_nomem;
}

int mosquitto_plugin_cleanup(void* userdata, struct mosquitto_opt* options, int option_count) {
  (void)userdata;
  (void)options;
  (void)option_count;
  unregister_all();
  g_ext.reset();
  g_pid = nullptr;
  return mosq::err_success;
}

}  // extern "C"
