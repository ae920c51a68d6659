#include "store/status.h"

namespace kennel {

const char* error_kind_name(error_kind kind) {
    switch (kind) {
        case error_kind::ok: return "ok";
        case error_kind::invalid_argument: return "invalid_argument";
        case error_kind::not_found: return "not_found";
        case error_kind::method_not_allowed: return "method_not_allowed";
        case error_kind::unauthenticated: return "unauthenticated";
        case error_kind::forbidden: return "forbidden";
        case error_kind::rate_limited: return "rate_limited";
        case error_kind::conflict: return "conflict";
        case error_kind::stale:
            return "stale";
        case error_kind::too_large: return "too_large";
        case error_kind::length_required: return "length_required";
        case error_kind::unsupported_media: return "unsupported_media_type";
        case error_kind::unavailable: return "unavailable";
        case error_kind::failed_precondition: return "failed_precondition";
        case error_kind::not_implemented:
            return "not_implemented";
        case error_kind::internal: return "internal";
    }
    return "internal";
}

std::string status::to_string() const {
    if (is_ok()) return "ok";
    std::string s = error_kind_name(kind_);
    if (!field_.empty()) s += " (" + field_ + ")";
    return s + ": " + message_;
}

}  // namespace kennel
