// YAML text -> Config (issue 3; issue 12: config.cpp split by concern). describe()
// (config_parse.h) drives the reading, so a key cannot be readable but missing from the
// flattening and the reload diff, or the other way round. Checks run after reading
// (config_check.cpp); every error of the file is collected, in file order.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include <yaml-cpp/yaml.h>

#include "presence/app/config_parse.h"
#include "presence/common/iso8601.h"

namespace presence::app {

namespace {

using namespace internal;

int line_of(const YAML::Mark& mark) { return mark.is_null() ? 0 : mark.line + 1; }

const char* kind_of(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: return "a map";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Null: return "nothing";
    case YAML::NodeType::Scalar: return "a string";
    case YAML::NodeType::Undefined: break;
  }
  return "nothing";
}

std::string hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

// ---------------------------------------------------------------------------------------------
// Reading

// Reads the YAML tree into a Config through describe(); every problem goes to the Diagnostics
// it is (so the checks of config_check.cpp see the same lines and failed keys).
class Reader : public Diagnostics {
 public:
  Reader(std::string file, const EnvLookup& env) : Diagnostics(std::move(file)), env_(env) {}

  void run(const YAML::Node& root, Config& config) {
    if (root.IsDefined() && !root.IsNull() && !root.IsMap()) {
      error(line_of(root.Mark()), "",
            std::string("expected a map of sections at the top level, got ") + kind_of(root));
      frames_.push_back({YAML::Node(), "", {}, false});
    } else {
      frames_.push_back({root, "", {}, root.IsMap()});
    }
    describe(*this, config);
    check_unknown(frames_.back());
    frames_.pop_back();
  }

  // --- visitor interface ---
  template <class F>
  void section(const char* name, F body) {
    const std::optional<YAML::Node> child = lookup(name);
    const std::string path = join(name);
    bool valid = false;
    if (child && child->IsMap()) {
      valid = true;
    } else if (child && !child->IsNull()) {
      error(line_of(child->Mark()), path, std::string("expected a map, got ") + kind_of(*child));
      failed_.insert(path);
    }
    frames_.push_back({valid ? *child : YAML::Node(), path, {}, valid});
    body();
    check_unknown(frames_.back());
    frames_.pop_back();
  }

  template <class T, class F>
  void list(const char* name, std::vector<T>& out, F item) {
    const std::optional<YAML::Node> node = lookup(name);
    const std::string path = join(name);
    if (!node || node->IsNull()) return;
    if (!node->IsSequence()) {
      error(line_of(node->Mark()), path, std::string("expected a list, got ") + kind_of(*node));
      failed_.insert(path);
      return;
    }
    out.clear();
    for (std::size_t i = 0; i < node->size(); ++i) {
      const YAML::Node element = (*node)[i];
      const std::string epath = path + "[" + std::to_string(i) + "]";
      lines_[epath] = line_of(element.Mark());
      // Always one entry per element, so out[i] and the "[i]" in error paths stay the file's i.
      out.emplace_back();
      if (!element.IsMap()) {
        error(line_of(element.Mark()), epath,
              std::string("expected a map, got ") + kind_of(element));
        failed_.insert(epath);
        continue;
      }
      frames_.push_back({element, epath, {}, true});
      item(out.back());
      check_unknown(frames_.back());
      frames_.pop_back();
    }
  }

  template <class T>
  void field(const char* name, T& out, bool /*secret*/ = false) {
    const std::optional<YAML::Node> node = lookup(name);
    if (!node) return;
    const std::string path = join(name);
    // A null value (`key:` and nothing) has its mark on the next token; report the key's line.
    const int line = node->IsNull() ? lines_[path] : line_of(node->Mark());
    lines_[path] = line;
    auto fail = [&](std::string reason) {
      error(line, path, std::move(reason));
      failed_.insert(path);
    };
    if constexpr (std::is_same_v<T, LabelMatch>) {
      if (node->IsNull()) return;
      if (!node->IsMap()) return fail(std::string("expected a map, got ") + kind_of(*node));
      out.clear();
      for (const auto& kv : *node) {
        const std::string label = kv.first.IsScalar() ? kv.first.Scalar() : "?";
        const std::string lpath = path + "." + label;
        if (!kv.second.IsScalar()) {
          error(line_of(kv.second.Mark()), lpath,
                std::string("expected a string, got ") + kind_of(kv.second));
          failed_.insert(path);
          continue;
        }
        if (auto v = scalar(kv.second, lpath)) out[label] = *v;
      }
      return;
    } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
      if (node->IsNull()) {
        out.clear();
        return;
      }
      if (!node->IsSequence()) return fail(std::string("expected a list, got ") + kind_of(*node));
      out.clear();
      for (std::size_t i = 0; i < node->size(); ++i) {
        const YAML::Node element = (*node)[i];
        const std::string epath = path + "[" + std::to_string(i) + "]";
        lines_[epath] = line_of(element.Mark());
        if (!element.IsScalar()) {
          error(line_of(element.Mark()), epath, std::string("expected a string, got ") + kind_of(element));
          failed_.insert(path);
          continue;
        }
        if (auto v = scalar(element, epath)) out.push_back(*v);
      }
      return;
    } else {
      if (node->IsMap() || node->IsSequence())
        return fail(std::string("expected ") + expected<T>() + ", got " + kind_of(*node));
      if (node->IsNull()) {
        // `username:` with nothing after it reads as "no username"; for anything else an empty
        // value is almost always a mistake, so it is an error rather than a silent default.
        if constexpr (std::is_same_v<T, std::string>) {
          out.clear();
          return;
        } else {
          return fail(std::string("expected ") + expected<T>() + ", got nothing");
        }
      }
      const std::optional<std::string> text = scalar(*node, path);
      if (!text) {
        failed_.insert(path);
        return;
      }
      std::string value = std::move(*text);
      if constexpr (!std::is_same_v<T, std::string>) {
        // A block scalar (`|`) keeps its final newline; it is not part of a number or duration.
        while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back())))
          value.pop_back();
      }
      if (auto reason = convert(value, out)) fail(std::move(*reason));
    }
  }


 private:
  struct Frame {
    YAML::Node node;
    std::string path;
    std::vector<std::string> known;
    bool valid = false;
  };

  std::string join(const char* name) const {
    const std::string& base = frames_.back().path;
    return base.empty() ? std::string(name) : base + "." + name;
  }

  // First value under `name` in the current map (duplicates are reported by check_unknown).
  std::optional<YAML::Node> lookup(const char* name) {
    Frame& f = frames_.back();
    f.known.emplace_back(name);
    if (!f.valid) return std::nullopt;
    for (const auto& kv : f.node) {
      if (kv.first.IsScalar() && kv.first.Scalar() == name) {
        lines_.emplace(join(name), line_of(kv.first.Mark()));
        return kv.second;
      }
    }
    return std::nullopt;
  }

  void check_unknown(const Frame& f) {
    if (!f.valid) return;
    std::set<std::string> seen;
    for (const auto& kv : f.node) {
      const int line = line_of(kv.first.Mark());
      if (!kv.first.IsScalar()) {
        error(line, f.path, "keys must be plain strings");
        continue;
      }
      const std::string& key = kv.first.Scalar();
      const std::string path = f.path.empty() ? key : f.path + "." + key;
      if (!seen.insert(key).second) {
        error(line, path, "duplicate key");
        continue;
      }
      if (std::find(f.known.begin(), f.known.end(), key) != f.known.end()) continue;
      // Top-level "x-..." keys are free for YAML anchors (`x-defaults: &d {...}`), as in compose
      // files; everything else unknown is an error.
      if (f.path.empty() && key.rfind("x-", 0) == 0) continue;
      if (key == "<<") {
        error(line, path, "YAML merge keys (<<) are not supported; repeat the keys");
        continue;
      }
      std::string reason = "unknown key";
      std::size_t best = 3;
      for (const auto& k : f.known) {
        const std::size_t d = edit_distance(key, k);
        if (d < best) {
          best = d;
          reason = "unknown key (did you mean '" + k + "'?)";
        }
      }
      error(line, path, reason);
    }
  }

  std::optional<std::string> scalar(const YAML::Node& node, const std::string& path) {
    Substituted s = substitute_env(node.Scalar(), env_);
    if (s.error) {
      error(line_of(node.Mark()), path, *s.error);
      return std::nullopt;
    }
    return std::move(s.value);
  }

  template <class T>
  static const char* expected() {
    if constexpr (std::is_same_v<T, std::string>) return "a string";
    if constexpr (std::is_same_v<T, bool>) return "true or false";
    if constexpr (std::is_same_v<T, int>) return "an integer";
    if constexpr (std::is_same_v<T, std::uint32_t>) return "a non-negative integer";
    if constexpr (std::is_same_v<T, double>) return "a number";
    if constexpr (std::is_same_v<T, Duration>) return "a duration";
    if constexpr (std::is_same_v<T, WallTime>) return "an ISO 8601 time";
    if constexpr (std::is_enum_v<T>) return "a string";
    return "a value";
  }

  // Each returns the reason on failure.
  static std::optional<std::string> convert(const std::string& s, std::string& out) {
    out = s;
    return std::nullopt;
  }
  static std::optional<std::string> convert(const std::string& s, bool& out) {
    const std::string l = lower(s);
    if (l == "true" || l == "yes" || l == "on") {
      out = true;
    } else if (l == "false" || l == "no" || l == "off") {
      out = false;
    } else {
      return "expected true or false, got " + quoted(s);
    }
    return std::nullopt;
  }
  static std::optional<std::string> convert(const std::string& s, int& out) {
    if (auto v = parse_int<int>(s)) {
      out = *v;
      return std::nullopt;
    }
    return "expected an integer, got " + quoted(s);
  }
  static std::optional<std::string> convert(const std::string& s, std::uint32_t& out) {
    if (auto v = parse_int<std::uint32_t>(s)) {
      out = *v;
      return std::nullopt;
    }
    return "expected a non-negative integer, got " + quoted(s);
  }
  static std::optional<std::string> convert(const std::string& s, double& out) {
    if (auto v = parse_double(s); v && std::isfinite(*v)) {
      out = *v;
      return std::nullopt;
    }
    return "expected a number, got " + quoted(s);
  }
  static std::optional<std::string> convert(const std::string& s, Duration& out) {
    if (auto v = parse_duration(s)) {
      out = *v;
      return std::nullopt;
    }
    return "bad duration " + quoted(s) + " (expected e.g. 250ms, 30s, 5m, 1h, 1d or 1m30s)";
  }
  static std::optional<std::string> convert(const std::string& s, WallTime& out) {
    if (auto v = parse_iso8601(s)) {
      out = *v;
      return std::nullopt;
    }
    if (common::parse_iso8601_unchecked(s)) return "bad time " + quoted(s) + " (before 1970)";
    return "bad time " + quoted(s) + " (expected ISO 8601 with a zone, e.g. 2026-11-21T12:00:00Z)";
  }
  template <class E, class = std::enable_if_t<std::is_enum_v<E>>>
  static std::optional<std::string> convert(const std::string& s, E& out) {
    for (const auto& [v, n] : EnumNames<E>::values) {
      if (s == n) {
        out = v;
        return std::nullopt;
      }
    }
    return "expected one of " + enum_choices<E>() + ", got " + quoted(s);
  }

  const EnvLookup& env_;
  std::vector<Frame> frames_;
};

// Post-processing that fills in derived values (after validation passed).
std::optional<std::string> read_token_file(const std::string& path, std::string& token) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "cannot read " + quoted(path) + ": " + std::strerror(errno);
  std::ostringstream s;
  s << in.rdbuf();
  token = s.str();
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  if (token.empty()) return quoted(path) + " is empty";
  return std::nullopt;
}


// What the raw text looks like, for the checks yaml-cpp 0.7 cannot be trusted with.
struct TextShape {
  int first_content_line = 0;     // first line that is not blank, a comment, '---' or a null
  int second_document_line = 0;   // a '---' after content: a second document
};

TextShape text_shape(std::string_view text) {
  TextShape shape;
  int line_no = 0;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t end = std::min(text.find('\n', pos), text.size());
    std::string_view line = text.substr(pos, end - pos);
    ++line_no;
    pos = end + 1;
    const bool marker = line.substr(0, 3) == "---" &&
                        (line.size() == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r');
    if (marker) {
      if (shape.first_content_line > 0) {
        shape.second_document_line = line_no;
        break;
      }
      line.remove_prefix(3);
    }
    const std::size_t first = line.find_first_not_of(" \t\r");
    if (first == std::string_view::npos) continue;
    line.remove_prefix(first);
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r'))
      line.remove_suffix(1);
    if (line.empty() || line.front() == '#' || line == "..." || line == "~" || line == "null" ||
        line == "Null" || line == "NULL" || line.front() == '%')  // %YAML directives
      continue;
    if (shape.first_content_line == 0) shape.first_content_line = line_no;
  }
  return shape;
}

}  // namespace

LoadResult load_config_string(std::string_view text, const std::string& name,
                              const EnvLookup& env) {
  LoadResult result;
  // yaml-cpp 0.7's LoadAll() can loop forever allocating on some broken input (jbeder/yaml-cpp
  // #1319, found by the mangled-config test), so the document count is checked on the text.
  const TextShape shape = text_shape(text);
  if (shape.second_document_line > 0) {
    result.errors.push_back({name, shape.second_document_line, "",
                             "only one YAML document is allowed (found a second '---')"});
    return result;
  }
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    // Broken syntax: one error at yaml-cpp's mark; nothing after it can be trusted.
    result.errors.push_back({name, line_of(e.mark), "", e.msg});
    return result;
  }
  if ((!root.IsDefined() || root.IsNull()) && shape.first_content_line > 0) {
    // yaml-cpp 0.7 reads some garbage (e.g. a line starting with ',') as an empty document
    // (jbeder/yaml-cpp #1318). Running on all defaults would silently drop the whole file.
    result.errors.push_back({name, shape.first_content_line, "",
                             "not valid YAML: nothing could be read from here on"});
    return result;
  }
  Config config;
  Reader reader(name, env);
  reader.run(root, config);
  check_rules(reader, config);
  if (config.mqtt.client_id.empty()) config.mqtt.client_id = "presenced-" + hostname();
  if (!config.http.token_file.empty() && config.http.token.empty()) {
    if (auto reason = read_token_file(config.http.token_file, config.http.token))
      reader.error(reader.line_for("http.token_file"), "http.token_file", *reason);
  }
  result.errors = reader.take_errors();
  std::stable_sort(result.errors.begin(), result.errors.end(),
                   [](const ConfigError& a, const ConfigError& b) { return a.line < b.line; });
  if (result.errors.empty()) result.config = std::move(config);
  return result;
}

LoadResult load_config_file(const std::string& path, const EnvLookup& env) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    LoadResult result;
    result.errors.push_back({path, 0, "", std::string("cannot read: ") + std::strerror(errno)});
    return result;
  }
  std::ostringstream text;
  text << in.rdbuf();
  return load_config_string(text.str(), path, env);
}

}  // namespace presence::app
