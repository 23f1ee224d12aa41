// Shared by the fuzz targets (docs/fuzzing.md). Every target defines LLVMFuzzerTestOneInput; it is
// linked either with libFuzzer (clang, -DWITH_FUZZING=ON) or with seed_main.cpp, which runs the
// seed corpus and the regression inputs of test/fuzz/corpus/<target>/ as a unit test in every
// build (gcc included), so a fixed crash stays fixed without clang.
//
// A harness must not leak, print per input, or depend on the wall clock: the same bytes give the
// same run (libFuzzer minimizes and replays by input alone).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace presence::fuzz {

// Consumes the input front to back: a selector byte, then fields cut at a separator. Simple on
// purpose: the mutator finds separators by itself, and seeds stay readable text.
class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size)
      : rest_(reinterpret_cast<const char*>(data), size) {}

  std::uint8_t byte() {
    if (rest_.empty()) return 0;
    const auto b = static_cast<std::uint8_t>(rest_.front());
    rest_.remove_prefix(1);
    return b;
  }
  // Up to the next `sep` (not included), or everything that is left.
  std::string_view field(char sep = '\n') {
    const auto at = rest_.find(sep);
    const std::string_view out = rest_.substr(0, at);
    rest_.remove_prefix(at == std::string_view::npos ? rest_.size() : at + 1);
    return out;
  }
  std::string_view rest() {
    const std::string_view out = rest_;
    rest_ = {};
    return out;
  }
  bool empty() const { return rest_.empty(); }

 private:
  std::string_view rest_;
};

}  // namespace presence::fuzz
