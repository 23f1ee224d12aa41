#include "broker-ext/options.h"

#include "broker-ext/alive.h"

#include <charconv>
#include <set>

namespace presence::broker_ext {

namespace {

std::optional<std::int64_t> parse_int(const std::string& s) {
  std::int64_t v = 0;
  if (s.empty()) return std::nullopt;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size()) return std::nullopt;
  return v;
}

bool has_topic_specials(const std::string& s) {
  return s.find_first_of("+#") != std::string::npos || s.find('\0') != std::string::npos;
}

}  // namespace

std::optional<std::int64_t> parse_duration_ms(const std::string& s) {
  std::size_t digits = 0;
  while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') ++digits;
  if (digits == 0 || digits > 12) return std::nullopt;
  auto n = parse_int(s.substr(0, digits));
  if (!n) return std::nullopt;
  const std::string unit = s.substr(digits);
  if (unit == "ms") return *n;
  if (unit == "s") return *n * 1000;
  if (unit == "m") return *n * 60 * 1000;
  if (unit == "h") return *n * 3600 * 1000;
  return std::nullopt;
}

ParseResult parse_options(const std::vector<std::pair<std::string, std::string>>& kv,
                          const std::string& default_node) {
  ParseResult r;
  Options o;
  o.node = default_node;
  bool have_basic_auth = false;
  bool have_burst = false;
  std::string prefix_template = "$SYS/presence/{node}";
  std::set<std::string> seen;

  auto err = [&r](const std::string& key, const std::string& what) {
    r.errors.push_back("plugin_opt_" + key + ": " + what);
  };
  auto integer = [&](const std::string& key, const std::string& v, std::int64_t lo,
                     std::int64_t hi, std::int64_t& dst) {
    auto n = parse_int(v);
    if (!n || *n < lo || *n > hi) {
      err(key, "'" + v + "' is not an integer in [" + std::to_string(lo) + ", " +
                   std::to_string(hi) + "]");
      return;
    }
    dst = *n;
  };
  auto duration = [&](const std::string& key, const std::string& v, std::int64_t lo_ms,
                      std::int64_t& dst) {
    auto ms = parse_duration_ms(v);
    if (!ms || *ms < lo_ms) {
      err(key, "'" + v + "' is not a duration >= " + std::to_string(lo_ms) +
                   "ms (write e.g. 500ms, 1s, 5m, 1h)");
      return;
    }
    dst = *ms;
  };

  for (const auto& [key, value] : kv) {
    if (!seen.insert(key).second) {
      err(key, "given more than once");
      continue;
    }
    if (key == "node") {
      if (value.empty() || value.size() > 128 || has_topic_specials(value) ||
          value.find('/') != std::string::npos) {
        err(key, "must be 1..128 bytes without '/', '+', '#'");
      } else {
        o.node = value;
      }
    } else if (key == "topic_prefix") {
      if (value.empty() || has_topic_specials(value) || value.back() == '/' ||
          value.size() > 1024) {
        err(key, "must be a topic without '+', '#' and without a trailing '/'");
      } else {
        prefix_template = value;
      }
    } else if (key == "basic_auth") {
      if (value == "defer") {
        o.basic_auth = BasicAuth::defer;
        have_basic_auth = true;
      } else if (value == "off") {
        o.basic_auth = BasicAuth::off;
        have_basic_auth = true;
      } else {
        err(key, "must be 'defer' or 'off'");
      }
    } else if (key == "qos") {
      std::int64_t q = 1;
      integer(key, value, 0, 2, q);
      o.qos = static_cast<int>(q);
    } else if (key == "heartbeat_interval") {
      duration(key, value, 100, o.heartbeat_interval_ms);
    } else if (key == "connect_rate") {
      integer(key, value, 0, 1000000, o.connect_rate);
    } else if (key == "connect_burst") {
      integer(key, value, 1, 100000000, o.connect_burst);
      have_burst = true;
    } else if (key == "flap_max_count") {
      integer(key, value, 0, 100000, o.flap_max_count);
    } else if (key == "flap_window") {
      duration(key, value, 1, o.flap_window_ms);
    } else if (key == "flap_ban") {
      duration(key, value, 1, o.flap_ban_ms);
    } else if (key == "flap_max_clients") {
      integer(key, value, 1, 100000000, o.flap_max_clients);
    } else if (key == "refusal_log_interval") {
      duration(key, value, 0, o.refusal_log_interval_ms);
    } else if (key == "heartbeat_topic") {
      std::string why;
      if (value.empty()) {
        // Empty = aggregation off, the default; allowed so a template can leave it blank.
      } else if (!HeartbeatPattern::parse(value, &why)) {
        err(key, "'" + value + "' " + why);
      } else {
        o.heartbeat_topic = value;
      }
    } else if (key == "alive_interval") {
      // The contract gives milliseconds (`1000`); a duration with a unit (`1s`) is accepted too,
      // like every other duration option.
      auto ms = parse_int(value);
      if (!ms) ms = parse_duration_ms(value);
      if (!ms || *ms < 100 || *ms > 60000) {
        err(key, "'" + value + "' is not a number of milliseconds in [100, 60000] (or 100ms..1m)");
      } else {
        o.alive_interval_ms = *ms;
      }
    } else if (key == "alive_max_bytes") {
      integer(key, value, 1024, 60000, o.alive_max_bytes);
    } else {
      err(key, "unknown option (known: node, topic_prefix, basic_auth, qos, heartbeat_interval, "
               "connect_rate, connect_burst, flap_max_count, flap_window, flap_ban, "
               "flap_max_clients, refusal_log_interval, heartbeat_topic, alive_interval, "
               "alive_max_bytes)");
    }
  }

  if (!have_basic_auth) {
    r.errors.push_back(
        "plugin_opt_basic_auth: required. 'defer' = join the auth chain (connected events, storm "
        "protection; needs password_file/an auth plugin if clients send usernames), 'off' = "
        "disconnected/heartbeat/boot events only. See docs/broker-ext.md");
  }
  if (o.node.empty()) r.errors.push_back("plugin_opt_node: host name is empty; set node");
  if (have_burst && o.connect_rate == 0) {
    r.errors.push_back("plugin_opt_connect_burst: needs plugin_opt_connect_rate > 0");
  }
  if (!have_burst) o.connect_burst = o.connect_rate;
  if (o.basic_auth == BasicAuth::off && o.storm_protection()) {
    r.errors.push_back(
        "plugin_opt_basic_auth: storm protection (connect_rate/flap_max_count) refuses clients "
        "in the auth chain and needs basic_auth defer");
  }

  // {node} substitution after all keys are read, so the order of lines does not matter.
  std::string prefix;
  for (std::size_t i = 0; i < prefix_template.size();) {
    if (prefix_template.compare(i, 6, "{node}") == 0) {
      prefix += o.node;
      i += 6;
    } else {
      prefix.push_back(prefix_template[i++]);
    }
  }
  o.topic_prefix = prefix;

  if (!r.errors.empty()) return r;

  auto ms = [](std::int64_t v) { return std::to_string(v) + "ms"; };
  r.info.push_back("node=" + o.node + " topic_prefix=" + o.topic_prefix +
                   " basic_auth=" + (o.basic_auth == BasicAuth::defer ? "defer" : "off") +
                   " qos=" + std::to_string(o.qos) +
                   " heartbeat_interval=" + ms(o.heartbeat_interval_ms));
  if (o.connect_rate > 0) {
    r.info.push_back("connect_rate=" + std::to_string(o.connect_rate) +
                     "/s connect_burst=" + std::to_string(o.connect_burst));
  } else {
    r.info.push_back("connect_rate=0 (global connect rate limit off)");
  }
  if (o.flap_max_count > 0) {
    r.info.push_back("flap_max_count=" + std::to_string(o.flap_max_count) +
                     " flap_window=" + ms(o.flap_window_ms) + " flap_ban=" + ms(o.flap_ban_ms) +
                     " flap_max_clients=" + std::to_string(o.flap_max_clients));
  } else {
    r.info.push_back("flap_max_count=0 (per-client flap ban off)");
  }
  if (o.aggregation()) {
    r.info.push_back("heartbeat_topic=" + o.heartbeat_topic + " alive_interval=" +
                     ms(o.alive_interval_ms) +
                     " alive_max_bytes=" + std::to_string(o.alive_max_bytes) + " -> " +
                     o.topic_prefix + "/alive");
  } else {
    r.info.push_back("heartbeat_topic unset (heartbeat aggregation off)");
  }
  r.options = o;
  return r;
}

}  // namespace presence::broker_ext
