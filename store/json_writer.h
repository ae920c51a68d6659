// Appends JSON text straight into a string, for hot output: the predict
// answers and the prediction log's probabilities. Building an nlohmann::json
// tree per answer cost more than the model itself (bench/predict, perf).
// Output parses to what nlohmann::json::dump() gives: numbers print as the
// shortest text that reads back the same double, with ".0" on whole numbers;
// non-finite numbers print as null; invalid UTF-8 in a string is replaced by
// U+FFFD (as dump() with error_handler_t::replace), so the output is always
// valid JSON whatever a string holds (an exception's message, say).
//
// The caller writes the punctuation around values; key() writes the comma
// between members itself.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

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
    // [v0,v1,...]
    json_writer& numbers(const double* values, std::size_t n);
    json_writer& strings(const std::vector<std::string>& values);
    // ,"name": — or "name": for the first member after a '{'.
    json_writer& key(std::string_view name);

private:
    std::string& out_;
};

}  // namespace kennel
