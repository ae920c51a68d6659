#include "server/errors.h"

#include <nlohmann/json.hpp>

namespace kennel {

int http_status_for(error_kind kind) {
    switch (kind) {
        case error_kind::ok: return 200;
        case error_kind::invalid_argument: return 400;
        case error_kind::not_found: return 404;
        case error_kind::method_not_allowed: return 405;
        case error_kind::unauthenticated: return 401;
        case error_kind::forbidden: return 403;
        case error_kind::rate_limited: return 429;
        case error_kind::conflict: return 409;
        case error_kind::stale:
            return 412;
        case error_kind::too_large: return 413;
        case error_kind::length_required: return 411;
        case error_kind::unsupported_media: return 415;
        case error_kind::failed_precondition: return 422;
        case error_kind::not_implemented:
            return 501;
        case error_kind::unavailable: return 503;
        case error_kind::internal: return 500;
    }
    return 500;
}

namespace {

nlohmann::json error_object(const status& s, std::optional<std::size_t> item) {
    nlohmann::json e = {{"code", error_kind_name(s.kind())}, {"message", s.message()}};
    if (!s.field().empty()) e["field"] = s.field();
    if (item) e["item"] = *item;
    return e;
}

}  // namespace

std::string error_object_json(const status& s, std::optional<std::size_t> item) {
    return error_object(s, item).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

http_response error_response(const status& s, std::optional<std::size_t> item) {
    http_response r;
    r.status = http_status_for(s.kind());
    nlohmann::json body = {{"error", error_object(s, item)}};
    r.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (s.kind() == error_kind::unavailable || s.kind() == error_kind::rate_limited) {
        // The wait the status knows (a sign-in lockout's rest), else a second.
        r.headers.emplace_back("Retry-After",
                               std::to_string(s.retry_after() > 0 ? s.retry_after() : 1));
    }
    if (s.kind() == error_kind::unauthenticated) {
        r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"kennel\"");
    }
    return r;
}

http_response json_response(std::string body, int status_code) {
    http_response r;
    r.status = status_code;
    r.body = std::move(body);
    return r;
}

}  // namespace kennel
