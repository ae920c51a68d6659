// Kennel's route table: every endpoint, one line each, in routes.cpp.
#pragma once

#include <vector>

#include "server/http_server.h"

namespace kennel {

class app;

std::vector<route> make_routes(app& a);

}  // namespace kennel
