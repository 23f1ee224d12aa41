#include "presence/app/config.h"
#include <doctest/doctest.h>
TEST_CASE("smoke") { CHECK(presence::app::load_config_string("", "x.yaml").ok()); }
