# presence_snapshot_bench_smoke: 50 000 devices, slices of a tiny budget (many slices, devices
# changing between them); checks the headline JSON lines are there with numbers.
execute_process(COMMAND ${BENCH} --devices 50000 --budget-us 50 --churn 50 --dir ${DIR}
                OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
message("${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "presence-snapshot-bench exited ${rc}: ${err}")
endif()
include(${CMAKE_CURRENT_LIST_DIR}/../../../support/json_lines.cmake)
require_json_lines("${out}" "snapshot_whole_copy_pause|ms" "snapshot_slice_pause_max|ms" "snapshot_slices|slices"
             "restore_total|ms" "snapshot_file_bytes|bytes")
if(out MATCHES "\"name\":\"snapshot_slices\",\"value\":1,")
  message(FATAL_ERROR "one slice: the copy was not sliced")
endif()
