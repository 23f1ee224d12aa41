# Helper functions: one per kind of target, so every room builds the same way.
#
#   presence_library(NAME SOURCES a.cpp ... DEPS lib ...)   static library, include root = repo root
#   presence_executable(NAME SOURCES ... DEPS ...)
#   presence_test(NAME SOURCES ... DEPS ... [LABELS unit|integration] [TIMEOUT s])
#                 doctest executable registered with CTest

set(PRESENCE_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast
                      -Wcast-align -Wunused -Woverloaded-virtual -Wnull-dereference)
if(WITH_WERROR)
  list(APPEND PRESENCE_WARNINGS -Werror)
endif()

function(_presence_common target)
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${PRESENCE_WARNINGS}>)
  target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR})
endfunction()

function(presence_library name)
  cmake_parse_arguments(A "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${A_SOURCES})
  _presence_common(${name})
  target_link_libraries(${name} PUBLIC ${A_DEPS})
endfunction()

function(presence_executable name)
  cmake_parse_arguments(A "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${A_SOURCES})
  _presence_common(${name})
  target_link_libraries(${name} PRIVATE ${A_DEPS})
endfunction()

function(presence_test name)
  cmake_parse_arguments(A "" "TIMEOUT" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${A_SOURCES})
  _presence_common(${name})
  target_link_libraries(${name} PRIVATE ${A_DEPS} doctest::doctest)
  target_compile_definitions(${name} PRIVATE PRESENCE_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
                                             PRESENCE_BINARY_DIR="${PROJECT_BINARY_DIR}")
  add_test(NAME ${name} COMMAND ${name})
  if(NOT A_TIMEOUT)
    set(A_TIMEOUT 120)
  endif()
  if(NOT A_LABELS)
    set(A_LABELS unit)
  endif()
  set_tests_properties(${name} PROPERTIES TIMEOUT ${A_TIMEOUT} LABELS "${A_LABELS}")
endfunction()
