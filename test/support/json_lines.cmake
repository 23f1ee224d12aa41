# One check for the benchmarks' JSON lines (docs/benchmarks.md: one {"name","value","unit"} object
# per line), shared by the bench smoke tests' cmake -P scripts:
#   include(<path to test/support>/json_lines.cmake)
#   require_json_lines("${out}" "name|unit" ...)
# fails the test when a named line is missing, malformed or has another unit. It says nothing about
# the values: the smoke tests assert that a benchmark runs and reports, never its speed.
function(require_json_lines out)
  set(num "-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?")
  foreach(pair IN LISTS ARGN)
    string(REPLACE "|" ";" p "${pair}")
    list(GET p 0 name)
    list(GET p 1 unit)
    if(NOT out MATCHES "(^|\n)\\{\"name\":\"${name}\",\"value\":${num},\"unit\":\"${unit}\"\\}(\n|$)")
      message(FATAL_ERROR "missing or malformed line for ${name} (unit ${unit})")
    endif()
  endforeach()
endfunction()
