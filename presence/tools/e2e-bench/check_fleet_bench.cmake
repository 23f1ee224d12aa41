# presence_e2e_bench_fleet_smoke: runs presence-e2e-bench --fleet-quick (20,000 devices through
# broker-ext aggregation, a 4 s steady window, SIGTERM and restart from the snapshot; ~15 s) and
# checks that every headline line is there with a number and that the run is sane: every device
# online, snapshots written, the API answered, both presenced exited cleanly, the restart restored
# every device and became ready. Nothing about speed is asserted (docs/benchmarks.md).
execute_process(COMMAND ${BENCH} --fleet-quick
                OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
message("${out}")
message("${err}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "presence-e2e-bench --fleet-quick exited ${rc}")
endif()
include(${CMAKE_CURRENT_LIST_DIR}/../../../test/support/json_lines.cmake)
require_json_lines("${out}" "fleet_rss_mb|MiB" "fleet_peak_rss_mb|MiB" "fleet_snapshot_pause_max_ms|ms"
             "fleet_snapshot_write_max_ms|ms" "fleet_engine_batch_max_ms|ms"
             "fleet_api_devices_page_p99_ms|ms" "fleet_api_devices_walk_p99_ms|ms"
             "fleet_api_device_p99_ms|ms" "fleet_api_fleet_p99_ms|ms"
             "fleet_restart_ready_seconds|s" "fleet_restart_restored_seconds|s"
             "fleet_restart_restore_seconds|s" "fleet_stop_seconds|s")
# Sanity: exact values where the run defines them, positive where a measurement must have happened.
foreach(pair "fleet_online|20000" "fleet_not_online|0" "fleet_api_errors|0"
             "fleet_presenced_clean_exit|1" "fleet_restart_clean_exit|1"
             "fleet_restart_not_online|0")
  string(REPLACE "|" ";" p "${pair}")
  list(GET p 0 name)
  list(GET p 1 want)
  if(NOT out MATCHES "\"name\":\"${name}\",\"value\":${want},")
    message(FATAL_ERROR "${name} is not ${want}")
  endif()
endforeach()
foreach(name fleet_rss_mb fleet_snapshot_saves fleet_snapshot_bytes fleet_snapshot_write_max_ms
             fleet_engine_batch_max_ms fleet_api_requests fleet_restart_ready_seconds
             fleet_restart_restore_seconds)
  if(NOT out MATCHES "\"name\":\"${name}\",\"value\":[0-9.]*[1-9]")
    message(FATAL_ERROR "${name} is not positive")
  endif()
endforeach()
