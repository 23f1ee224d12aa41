#include <doctest/doctest.h>

#include "presence/app/alerting.h"
