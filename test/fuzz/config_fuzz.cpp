// Fuzz target: the YAML configuration loader (presence/app/config.*) and its building blocks.
// A config file is operator input, but a typo, a bad merge or a truncated file must give
// `file:line: key: reason` and exit 2, never a crash (issue 19: 36 broken configs all exited 2).
//
// Input: one selector byte, then
//   'd'    a duration / size / topic pattern / ${VAR} string for the scalar parsers
//   other  a whole YAML file for load_config_string (bit 0: also flatten and diff it)
// ${VAR} lookups see a fixed fake environment, never the real one.
#include <cstdlib>
#include <optional>
#include <string>

#include "presence/app/config.h"
#include "test/fuzz/fuzz.h"

namespace {

using namespace presence::app;

std::optional<std::string> fake_env(std::string_view name) {
  if (name == "HOME") return std::string("/home/presenced");
  if (name == "TOKEN") return std::string("s3cret");
  return std::nullopt;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  presence::fuzz::Input in(data, size);
  const std::uint8_t selector = in.byte();
  const std::string_view text = in.rest();

  if (selector == 'd') {
    if (const auto d = parse_duration(text)) {
      // Whatever parses prints back to something that parses to the same value.
      const auto again = parse_duration(format_duration(*d));
      if (!again || *again != *d) std::abort();
    }
    parse_size(text);
    validate_topic_pattern(text, true);
    validate_topic_pattern(text, false);
    substitute_env(text, fake_env);
    return 0;
  }

  const LoadResult r = load_config_string(text, "fuzz.yaml", fake_env);
  if (r.ok() != r.config.has_value()) std::abort();
  for (const auto& e : r.errors)
    if (to_string(e).empty()) std::abort();
  if (r.config && (selector & 1) != 0) {
    flatten_config(*r.config, true);
    apply_reloadable(Config{}, *r.config);
  }
  return 0;
}
