# presence_bench_smoke: runs presence-bench at 10k devices and checks that the three headline JSON
# lines are there with numeric values. Prints the numbers; asserts nothing about speed.
execute_process(COMMAND ${BENCH} --devices 10000 --seconds 120 --seed 7
                OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
message("${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "presence-bench exited ${rc}: ${err}")
endif()
include(${CMAKE_CURRENT_LIST_DIR}/../../../support/json_lines.cmake)
require_json_lines("${out}" "core_events_per_s|events/s" "core_bytes_per_device|B" "core_devices|devices")
if(NOT out MATCHES "\"name\":\"core_devices\",\"value\":10000,")
  message(FATAL_ERROR "core_devices is not 10000")
endif()
if(out MATCHES "\"name\":\"core_events\",\"value\":0,")
  message(FATAL_ERROR "no events were fed to the engine")
endif()
