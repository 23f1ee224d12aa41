// Fuzz target: broker-ext, the Mosquitto plugin (broker-ext/*): its options (every
// `plugin_opt_<key> <value>` line of mosquitto.conf) and, with the options that parse, what it
// does with input from any client of the broker: client ids at connect, disconnects, and the
// topic of every PUBLISH against the heartbeat pattern (broker-ext/alive.*). A crash here takes
// the broker down with it, so the plugin's parsers get the same treatment as presenced's.
//
// Input: lines. "key value" lines (up to the first empty line) are the plugin options; every line
// after it is one client event: "c <client id>" connect, "d <client id>" disconnect, "t" tick
// (1 s later), anything else the topic of a PUBLISH.
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "broker-ext/options.h"
#include "broker-ext/presence_ext.h"
#include "test/fuzz/fuzz.h"

using namespace presence::broker_ext;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  presence::fuzz::Input in(data, size);
  std::vector<std::pair<std::string, std::string>> kv;
  while (!in.empty()) {
    const std::string_view line = in.field();
    if (line.empty()) break;
    const auto sp = line.find(' ');
    kv.emplace_back(std::string(line.substr(0, sp)),
                    sp == std::string_view::npos ? std::string() : std::string(line.substr(sp + 1)));
    parse_duration_ms(kv.back().second);
  }
  ParseResult parsed = parse_options(kv, "fuzz-node");
  if (parsed.options.has_value() == !parsed.errors.empty()) std::abort();
  if (!parsed.options) return 0;
  // Keep the run bounded: the heartbeat and alive timers are driven below in 1 s steps.
  Now now{1'000'000, 1'800'000'000'000};
  PresenceExt ext(std::move(*parsed.options), "boot-1", "0.1.0", "2.0.18", now);
  ext.boot_message();
  Output out;
  // Connection handles are never dereferenced: small integers stand for struct mosquitto*.
  std::uintptr_t next_conn = 1;
  std::vector<std::pair<std::uintptr_t, std::string>> open;
  std::size_t events = 0;
  while (!in.empty() && events++ < 256) {
    const std::string_view line = in.field();
    if (line.size() >= 2 && line[0] == 'c' && line[1] == ' ') {
      ClientInfo info;
      info.client_id = std::string(line.substr(2));
      info.address = "127.0.0.1";
      info.protocol_version = 4;
      info.keepalive = 60;
      const auto conn = next_conn++;
      ext.on_basic_auth(reinterpret_cast<const void*>(conn), info, now, out);
      open.emplace_back(conn, info.client_id);
    } else if (line.size() >= 2 && line[0] == 'd' && line[1] == ' ') {
      const std::string id(line.substr(2));
      std::uintptr_t conn = next_conn++;  // unknown connection unless one has this id
      for (auto it = open.begin(); it != open.end(); ++it)
        if (it->second == id) {
          conn = it->first;
          open.erase(it);
          break;
        }
      ext.on_disconnect(reinterpret_cast<const void*>(conn), id.empty() ? nullptr : id.c_str(),
                        now, out);
    } else if (line == "t") {
      now.mono_ms += 1000;
      now.unix_ms += 1000;
      ext.on_tick(now, out, [](const void*) { return true; });
    } else {
      ext.on_message(line, out);
    }
    if (out.messages.size() > 4096) out = {};
  }
  return 0;
}
