# presence_snapshot_bench_smoke: 50 000 devices, slices of a tiny budget (many slices, devices
# changing between them); checks the headline JSON lines are there with numbers.
execute_process(COMMAND ${BENCH} --devices 50000 --budget-us 50 --churn 50 --dir ${DIR}
                OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
message("${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "presence-snapshot-bench exited ${rc}: ${err}")
endif()
set(num "-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?")
foreach(pair "snapshot_whole_copy_pause|ms" "snapshot_slice_pause_max|ms" "snapshot_slices|slices"
             "restore_total|ms" "snapshot_file_bytes|bytes")
  string(REPLACE "|" ";" p "${pair}")
  list(GET p 0 name)
  list(GET p 1 unit)
  if(NOT out MATCHES "(^|\n)\\{\"name\":\"${name}\",\"value\":${num},\"unit\":\"${unit}\"\\}(\n|$)")
    message(FATAL_ERROR "missing or malformed line for ${name} (unit ${unit})")
  endif()
endforeach()
if(out MATCHES "\"name\":\"snapshot_slices\",\"value\":1,")
  message(FATAL_ERROR "one slice: the copy was not sliced")
endif()
