// The JSON edge for facts: request bodies (one object, an array, or NDJSON)
// become validated fact_input values or per-item rejections, and stored facts
// become JSON again. The core never sees nlohmann::json. Thread-safe.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "store/facts.h"
#include "store/status.h"

namespace kennel {

// An entity is at most this many bytes, in facts and in prediction requests
// (a prediction's entity must be able to meet its outcome's).
constexpr std::size_t max_entity_bytes = 256;

// What is wrong with an entity, by the rules facts and prediction requests
// share: empty or over max_entity_bytes, or holding a NUL (SQLite's
// length() stops at one, and the facts table's CHECK failed). Empty when
// it is fine.
std::string entity_problem(std::string_view entity);
// The same for an entity read from a query string, which (unlike JSON text)
// may hold bytes that are not UTF-8; the check stays off the path of facts
// and predictions, whose entities the JSON parser has checked.
std::string query_entity_problem(std::string_view entity);

// What is wrong with a stream's name (1-128 letters, digits, '_', '-', '.'):
// the same words where a fact names one and where a read does. Empty when
// it is fine.
std::string stream_name_problem(const std::string& stream);

enum class body_format { json, ndjson };

struct parsed_item {
    std::size_t index = 0;  // position in the batch (NDJSON: among non-empty lines)
    std::size_t line = 0;   // NDJSON only: 1-based line number
    status error;           // not ok: rejected before reaching the store
    fact_input fact;
};

struct parsed_body {
    bool single = false;  // the body was one object, not a batch
    std::vector<parsed_item> items;
};

struct fact_limits {
    std::size_t max_items = 10000;
};

// Whole-body problems (malformed JSON, not an object or array, too many
// items) are an error status; per-item problems are in the items.
result<parsed_body> parse_fact_body(const std::string& body, body_format format,
                                    const fact_limits& limits, micros now);

// An NDJSON body read a slice of lines at a time, so that the first facts of
// a large request can be written while the rest is still being parsed.
class ndjson_reader {
public:
    // `body` must outlive the reader.
    ndjson_reader(const std::string& body, micros now) : body_(body), now_(now) {}
    // The facts (non-blank lines) in the whole body; for the whole-body
    // limits, which are checked before anything is written.
    std::size_t count() const;
    // Parses up to `n` more facts onto `out`, numbering them on from the
    // items already read; false when the body is done.
    bool read(std::size_t n, std::vector<parsed_item>& out);
    // count() checked against the limits: too many is too_large, none is
    // invalid_argument.
    status check(const fact_limits& limits) const;

private:
    // The line starting at `pos` (without its '\n'); moves `pos` past it.
    std::string_view line_at(std::size_t& pos) const;

    const std::string& body_;
    micros now_;
    std::size_t pos_ = 0;
    std::size_t line_no_ = 0;
    std::size_t items_ = 0;
};

// Validates one fact object already parsed from text. Exposed for `kennel
// import`, which builds objects from CSV rows.
parsed_item parse_fact_text(const std::string& json_text, micros now);

// The rules a number with its uncertainty follows, in a fact and in a
// prediction's features alike: an object with "lower" has "upper" too, both
// numbers, lower <= upper; a "confidence" is a number in [0, 1] beside a
// numeric "value" or the bounds. OK for anything but an object. `path`
// names the field in the error.
status check_uncertainty(const nlohmann::json& v, const std::string& path);

std::string fact_to_json(const fact& f);
std::string facts_to_ndjson_line(const fact& f);

}  // namespace kennel
