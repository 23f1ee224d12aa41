# presence_e2e_bench_smoke: runs presence-e2e-bench --quick (mosquitto + presenced, ~5 s) and checks
# that the headline JSON lines are there with numeric values and that presenced received messages.
# Prints the numbers; asserts nothing about speed (HELPERS.md).
# -DAGGREGATED=ON: --heartbeats aggregated, lines e2e_agg_* (docs/broker-ext.md).
set(mode_args "")
set(pre "e2e_")
if(AGGREGATED)
  set(mode_args --heartbeats aggregated)
  set(pre "e2e_agg_")
endif()
execute_process(COMMAND ${BENCH} --quick ${mode_args}
                OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
message("${out}")
message("${err}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "presence-e2e-bench exited ${rc}")
endif()
include(${CMAKE_CURRENT_LIST_DIR}/../../../test/support/json_lines.cmake)
require_json_lines("${out}" "${pre}5k_published_per_s|msg/s" "${pre}max_published_per_s|msg/s"
             "${pre}max_processed_per_s|msg/s" "${pre}max_presenced_cpu_us_per_msg|us/msg"
             "${pre}max_mosquitto_cpu_us_per_msg|us/msg" "${pre}max_cpu_ratio|ratio"
             "${pre}max_lag_p99_ms|ms" "${pre}max_lost|msg" "${pre}max_presenced_rss_mb|MiB"
             "${pre}max_bottleneck_is_presenced|bool")
foreach(step 5k max)
  if(NOT out MATCHES "\"name\":\"${pre}${step}_received\",\"value\":[1-9]")
    message(FATAL_ERROR "presenced received no messages in step ${step}")
  endif()
endforeach()
