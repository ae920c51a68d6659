// One JSON error shape for every error Kennel returns, and the one place
// that maps error kinds to HTTP status codes:
//
//   {"error": {"code": "invalid_argument", "message": "...",
//              "field": "data.likes.lower", "item": 3}}
//
// "field" and "item" appear only when known. Pure functions: thread-safe.
#pragma once

#include <optional>

#include "server/http_server.h"
#include "store/status.h"

namespace kennel {

int http_status_for(error_kind kind);

// The error object alone (for embedding in per-item batch results).
std::string error_object_json(const status& s, std::optional<std::size_t> item = std::nullopt);

// A whole response: status code, JSON body, and Retry-After for 503 and 429
// (the status's retry_after(), else 1 s).
http_response error_response(const status& s, std::optional<std::size_t> item = std::nullopt);

// A 200 (or given status) JSON response from an already-serialised body.
http_response json_response(std::string body, int status_code = 200);

}  // namespace kennel
