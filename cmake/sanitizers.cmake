# Sanitizer and fuzzing builds (issue 19, "Also build"). Included by the top-level CMakeLists.txt
# before any room, so every library, tool, test and fuzz target of the build gets the same flags
# (ASan and TSan need the whole program instrumented; a mix reports false positives or misses).
#
#   -DWITH_SANITIZERS=address,undefined   ASan + UBSan (the unit and integration labels in CI)
#   -DWITH_SANITIZERS=thread              TSan (the threaded tests: label "threaded")
#   -DWITH_FUZZING=ON                     libFuzzer targets in test/fuzz (needs clang); the rest of
#                                         the build gets -fsanitize=fuzzer-no-link (coverage)
#
# UBSan halts on the first finding (-fno-sanitize-recover=all) so a finding fails its test instead
# of scrolling past in a log. The one exception is PRESENCE_FUZZ_KNOWN_FINDINGS (fuzz builds
# only): signed-integer-overflow stays recoverable so test/fuzz/known_findings.supp can silence
# the open findings of issue 19 while UBSAN_OPTIONS=halt_on_error=1 still stops on everything else.
set(WITH_SANITIZERS "" CACHE STRING "Comma-separated -fsanitize= list: address,undefined or thread")
option(WITH_FUZZING "Build the libFuzzer targets in test/fuzz (clang only)" OFF)
option(PRESENCE_FUZZ_KNOWN_FINDINGS "Fuzz builds: let known_findings.supp silence open findings" OFF)

if(WITH_SANITIZERS)
  string(REPLACE ";" "," _presence_san "${WITH_SANITIZERS}")
  if(_presence_san MATCHES "thread" AND _presence_san MATCHES "address")
    message(FATAL_ERROR "WITH_SANITIZERS: thread cannot be combined with address")
  endif()
  # -g1 (line tables): enough for file:line in every report, ~30% less compile time than -g.
  set(_presence_san_flags -fsanitize=${_presence_san} -fno-omit-frame-pointer -g1)
  if(_presence_san MATCHES "undefined")
    list(APPEND _presence_san_flags -fno-sanitize-recover=all)
    if(PRESENCE_FUZZ_KNOWN_FINDINGS)
      list(APPEND _presence_san_flags -fsanitize-recover=signed-integer-overflow)
    endif()
  endif()
  add_compile_options(${_presence_san_flags})
  add_link_options(-fsanitize=${_presence_san})
  message(STATUS "presenced: sanitizers ${_presence_san}")
endif()

if(WITH_FUZZING)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "WITH_FUZZING needs clang (cmake -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang)")
  endif()
  # Coverage feedback for libFuzzer everywhere; the fuzz executables add -fsanitize=fuzzer (main).
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()
