// status and result<T>: how the core reports errors without exceptions.
//
// Exceptions from third-party code (SQLite, Dlib, JSON parsing) are caught
// where they enter and turned into a status; the HTTP edge turns a status into
// one JSON error shape (server/errors.h). Both types are plain values and may
// be copied between threads freely.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace kennel {

// One list of error kinds for the whole program; server/errors.cpp maps each
// to an HTTP status.
enum class error_kind {
    ok,
    invalid_argument,     // the caller sent something wrong (400)
    not_found,            // a named thing does not exist (404)
    method_not_allowed,   // the path exists, the method does not (405)
    unauthenticated,      // no or wrong credentials (401)
    forbidden,            // credentials without the needed scope (403)
    rate_limited,         // too many attempts; retry later (429)
    conflict,             // the request contradicts current state (409)
    stale,                // an If-Match/If-None-Match condition does not hold (412)
    too_large,            // a body or batch over a configured limit (413)
    length_required,      // a body without a Content-Length (411)
    unsupported_media,    // wrong content type (415)
    unavailable,          // overloaded or not ready; retry later (503)
    failed_precondition,  // e.g. training data that cannot train a model (422)
    not_implemented,      // a request method Kennel does not serve (501)
    internal,             // a bug or an I/O failure (500)
};

const char* error_kind_name(error_kind kind);

class status {
public:
    status() = default;
    status(error_kind kind, std::string message, std::string field = {})
        : kind_(kind), message_(std::move(message)), field_(std::move(field)) {}

    static status ok() { return {}; }

    bool is_ok() const { return kind_ == error_kind::ok; }
    explicit operator bool() const { return is_ok(); }
    error_kind kind() const { return kind_; }
    const std::string& message() const { return message_; }
    // The request field the error is about ("data.likes.lower"), or empty.
    const std::string& field() const { return field_; }
    // Whole seconds to wait before trying again (Retry-After), 0 if unknown.
    long long retry_after() const { return retry_after_; }
    status& set_retry_after(long long seconds) {
        retry_after_ = seconds;
        return *this;
    }

    std::string to_string() const;

private:
    error_kind kind_ = error_kind::ok;
    std::string message_;
    std::string field_;
    long long retry_after_ = 0;
};

inline status invalid(std::string field, std::string message) {
    return status(error_kind::invalid_argument, std::move(message), std::move(field));
}

// A value or the status that explains why there is none.
template <class T>
class result {
public:
    result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
    result(status s) : v_(std::move(s)) { assert(!std::get<status>(v_).is_ok()); }  // NOLINT

    bool is_ok() const { return std::holds_alternative<T>(v_); }
    explicit operator bool() const { return is_ok(); }

    T& value() & { return std::get<T>(v_); }
    const T& value() const& { return std::get<T>(v_); }
    T&& value() && { return std::get<T>(std::move(v_)); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    const status& error() const { return std::get<status>(v_); }

private:
    std::variant<T, status> v_;
};

}  // namespace kennel
