#include <doctest/doctest.h>

#include "test/integration/alerting/harness.h"

namespace presence::atest {}
