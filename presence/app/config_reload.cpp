// Flatten, diff and reload (issue 3 "reload"; issue 12: config.cpp split by concern): every key
// with its effective value (describe() in config_parse.h walks the same schema the loader reads),
// which keys changed, which of those need a restart, the config to run with after SIGHUP, and
// the `presenced --check-config` output.
#include <map>
#include <ostream>
#include <set>

#include "presence/app/config_parse.h"

namespace presence::app {

namespace {

using namespace internal;

// ---------------------------------------------------------------------------------------------
// Flattening (for diffs and --check-config output)

class Flattener {
 public:
  explicit Flattener(bool hide_secrets) : hide_(hide_secrets) {}

  template <class F>
  void section(const char* name, F body) {
    prefix_.push_back(join(name));
    body();
    prefix_.pop_back();
  }
  template <class T, class F>
  void list(const char* name, std::vector<T>& items, F item) {
    const std::string path = join(name);
    out.emplace_back(path + ".size", std::to_string(items.size()));
    for (std::size_t i = 0; i < items.size(); ++i) {
      prefix_.push_back(path + "[" + std::to_string(i) + "]");
      item(items[i]);
      prefix_.pop_back();
    }
  }
  template <class T>
  void field(const char* name, T& value, bool secret = false) {
    std::string text = format(value);
    if (secret && hide_ && !text.empty()) text = "<hidden>";
    out.emplace_back(join(name), std::move(text));
  }

  std::vector<std::pair<std::string, std::string>> out;

 private:
  std::string join(const char* name) const {
    return prefix_.empty() ? std::string(name) : prefix_.back() + "." + name;
  }
  static std::string format(const std::string& v) { return v; }
  static std::string format(bool v) { return v ? "true" : "false"; }
  static std::string format(int v) { return std::to_string(v); }
  static std::string format(std::uint32_t v) { return std::to_string(v); }
  static std::string format(double v) { return format_double(v); }
  static std::string format(Duration v) { return format_duration(v); }
  static std::string format(WallTime v) { return format_iso8601(v); }
  static std::string format(const std::vector<std::string>& l) {
    std::string s = "[";
    for (const auto& v : l) s += (s.size() > 1 ? ", " : "") + v;
    return s + "]";
  }
  static std::string format(const LabelMatch& m) {
    std::string s = "{";
    for (const auto& [k, v] : m) s += (s.size() > 1 ? ", " : "") + k + ": " + v;
    return s + "}";
  }
  template <class E, class = std::enable_if_t<std::is_enum_v<E>>>
  static std::string format(E e) {
    return enum_name(e);
  }

  bool hide_;
  std::vector<std::string> prefix_;
};


// Keys whose change only takes effect after a restart. Prefix match on whole key components.
// Everything the running process has already built from (connections, subscriptions, listeners,
// the engine and its retained topics) is listed; what is consulted per decision or per send is not.
constexpr const char* kRestartKeys[] = {
    "mqtt",                  // the broker connection and session are built once
    "topics",                // subscriptions
    "sources",               // subscriptions and parsers
    "sparkplug",             // the spBv1.0/# subscription and the edge-node tracker
    "device_classes",        // core::Engine takes its classes at construction
    "overload",              // the detector is built with the MQTT link (issue 16)
    "output.device_prefix",  // retained state would be left behind on the old topics
    "output.fleet_topic",
    "presence",              // core::Engine takes its Config at construction
    "alerts.policy",         // policy lives in the engine as well
    "http",                  // the listener is bound once
    "store.dir",             // open files and the snapshot lock
    "mode",                  // switching the decision model mid-run would mix semantics
    "ha",                    // the election and its lease are built once
    "emqx_api",              // given to the service at start
};

}  // namespace

std::vector<std::pair<std::string, std::string>> flatten_config(const Config& config,
                                                                bool hide_secrets) {
  Config copy = config;  // describe() takes non-const references (it also drives reading)
  Flattener f(hide_secrets);
  describe(f, copy);
  return std::move(f.out);
}

bool requires_restart(std::string_view key) {
  for (std::string_view prefix : kRestartKeys) {
    if (key.substr(0, prefix.size()) == prefix &&
        (key.size() == prefix.size() || key[prefix.size()] == '.' || key[prefix.size()] == '['))
      return true;
  }
  return false;
}

ConfigDiff diff_config(const Config& running, const Config& next) {
  const auto a = flatten_config(running, false);
  const auto b = flatten_config(next, false);
  std::map<std::string, std::string> old_values(a.begin(), a.end());
  ConfigDiff diff;
  std::set<std::string> seen;
  auto add = [&](const std::string& key) {
    diff.changed.push_back(key);
    if (requires_restart(key)) diff.restart_required.push_back(key);
  };
  for (const auto& [key, value] : b) {
    seen.insert(key);
    auto it = old_values.find(key);
    if (it == old_values.end() || it->second != value) add(key);
  }
  for (const auto& [key, value] : a)  // list entries that disappeared
    if (!seen.count(key)) add(key);
  return diff;
}

Config apply_reloadable(const Config& running, const Config& next) {
  // Start from the running config (so everything listed in kRestartKeys keeps its value) and take
  // over what can change at run time. The unit test checks this against requires_restart().
  Config c = running;
  c.output.retain = next.output.retain;
  c.output.qos = next.output.qos;
  c.output.publish_rate = next.output.publish_rate;
  c.output.coalesce_interval = next.output.coalesce_interval;
  c.store.snapshot_interval = next.store.snapshot_interval;
  const AlertPolicyConfig policy = running.alerts.policy;
  c.alerts = next.alerts;
  c.alerts.policy = policy;
  c.log = next.log;
  return c;
}

ReloadResult reload_config(const Config& running, const std::string& path, const EnvLookup& env) {
  ReloadResult r;
  r.load = load_config_file(path, env);
  if (r.load.config) {
    r.diff = diff_config(running, *r.load.config);
    r.to_apply = apply_reloadable(running, *r.load.config);
  }
  return r;
}

int check_config(const std::string& path, std::ostream& out, std::ostream& err,
                 const EnvLookup& env) {
  const LoadResult r = load_config_file(path, env);
  for (const auto& e : r.errors) err << to_string(e) << '\n';
  if (!r.config) return 2;  // the exit status presenced uses for a bad config
  out << path << ": OK\n";
  for (const auto& [key, value] : flatten_config(*r.config)) out << key << " = " << value << '\n';
  return 0;
}

}  // namespace presence::app
