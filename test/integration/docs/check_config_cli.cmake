# `presenced --check-config FILE` prints "FILE: OK" and the effective value of every key with the
# secrets hidden, as docs/configuration.md says (issue 17: it printed only "FILE: OK").
#   cmake -DPRESENCED=... -DCONFIG=... -P check_config_cli.cmake  (secrets come from the env)
execute_process(COMMAND ${PRESENCED} --check-config ${CONFIG}
                OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "exit ${rc}:\n${out}\n${err}")
endif()
foreach(expect "${CONFIG}: OK\n" "\npresence.offline_grace = 15s\n" "\nalerts.policy.alert_after = 30s\n"
        "\nhttp.token = <hidden>\n" "\nalerts.webhook.secret = <hidden>\n" "\nmqtt.keepalive = ")
  string(FIND "${out}" "${expect}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "--check-config output lacks '${expect}':\n${out}")
  endif()
endforeach()
foreach(secret check-config-token-4711 check-config-secret-4711)
  string(FIND "${out}${err}" "${secret}" at)
  if(NOT at EQUAL -1)
    message(FATAL_ERROR "--check-config shows the secret ${secret}:\n${out}")
  endif()
endforeach()
message(STATUS "--check-config prints the effective config with the secrets hidden")
