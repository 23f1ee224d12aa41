// Runs LLVMFuzzerTestOneInput over files and directories given on the command line (the seed
// corpus and the regression inputs), like a libFuzzer binary given a corpus with -runs=0. Linked
// into <target>_seeds in every build, so the inputs that once crashed run under gcc in plain CTest.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "test/fuzz/fuzz.h"

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  std::vector<fs::path> files;
  for (int i = 1; i < argc; ++i) {
    const fs::path p(argv[i]);
    if (fs::is_directory(p)) {
      for (const auto& e : fs::recursive_directory_iterator(p))
        if (e.is_regular_file()) files.push_back(e.path());
    } else {
      files.push_back(p);
    }
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    // stdio rather than ifstream: gcc 12's -Wnull-dereference flags istreambuf_iterator.
    std::FILE* in = std::fopen(f.c_str(), "rb");
    if (in == nullptr) {
      std::fprintf(stderr, "cannot read %s\n", f.c_str());
      return 1;
    }
    std::string bytes;
    char buf[65536];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, in)) > 0;) bytes.append(buf, n);
    std::fclose(in);
    LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
  }
  std::printf("%zu input(s) ran without a finding\n", files.size());
  return files.empty() ? 1 : 0;
}
