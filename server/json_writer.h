// Appends JSON text straight into a string, for the hot answers (predict):
// building an nlohmann::json tree per answer cost more than the model itself
// (bench/predict, perf). Output parses to what nlohmann::json::dump() gives:
// numbers print as the shortest text that reads back the same double, with
// ".0" on whole numbers, and non-finite numbers print as null.
//
// The caller writes the punctuation between members with key(); strings are
// escaped (quote, backslash, control characters). Strings must be UTF-8; every
// string the predict path writes came through the JSON parser or the store.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace kennel {

class json_writer {
public:
    explicit json_writer(std::string& out) : out_(out) {}

    json_writer& raw(std::string_view text) {
        out_.append(text);
        return *this;
    }
    json_writer& string(std::string_view s);
    json_writer& number(double v);
    json_writer& integer(std::int64_t v);
    json_writer& boolean(bool b) { return raw(b ? "true" : "false"); }
    json_writer& null() { return raw("null"); }
    // ,"name": — or "name": for the first member after a '{'.
    json_writer& key(std::string_view name);

private:
    std::string& out_;
};

}  // namespace kennel
