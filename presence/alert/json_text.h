// The text of a request body. A device id or label may carry bad UTF-8; nlohmann::json's dump()
// throws on it by default, which would lose the page: every sink's body goes through this, which
// replaces the invalid bytes instead (HELPERS.md "bad input"; issue 12: four copies before).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace presence::alert {

inline std::string json_text(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace presence::alert
