# presence_replay_demo_smoke: the demo story (config/replay/demo.replay) replays with no bad line,
# --strict, and shows the decisions the demo promises: a flap, a real offline, a summary.
execute_process(COMMAND ${REPLAY} --strict --no-color ${LOG}
                OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
message("${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "presence-replay exited ${rc}: ${err}")
endif()
if(NOT err STREQUAL "")
  message(FATAL_ERROR "unexpected errors: ${err}")
endif()
foreach(needle "-> flapping" "-> offline" "== summary:" " 0 bad lines")
  string(FIND "${out}" "${needle}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "output lacks '${needle}'")
  endif()
endforeach()
