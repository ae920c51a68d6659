// Raw values and records: what the learning core sees of a fact's data before
// any feature transform, and the kind of task a model solves.
//
// The HTTP edge turns JSON into these types, so ml/ never sees nlohmann::json.
// All types here are plain values: copy them between threads freely; a const
// object may be read from several threads at once.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <variant>

#include "store/status.h"

namespace kennel::ml {

// A numeric value with its uncertainty, e.g. {"lower":27,"upper":33}.
struct interval {
    double lower = 0;
    double upper = 0;

    double midpoint() const { return lower + (upper - lower) / 2; }
    double width() const { return upper - lower; }
    friend bool operator==(const interval&, const interval&) = default;
};

// monostate means missing (absent or JSON null).
using raw_value = std::variant<std::monostate, double, bool, std::string, interval>;

// Field name -> value. std::less<> allows lookups by std::string_view.
using raw_record = std::map<std::string, raw_value, std::less<>>;

// The name of a value's type, for error messages ("found string").
inline const char* raw_value_type_name(const raw_value& v) {
    switch (v.index()) {
        case 0:
            return "missing";
        case 1:
            return "number";
        case 2:
            return "boolean";
        case 3:
            return "string";
        case 4:
            return "interval";
    }
    return "unknown";
}

enum class task_kind { binary, multiclass, regression };

inline const char* task_kind_name(task_kind t) {
    switch (t) {
        case task_kind::binary:
            return "binary";
        case task_kind::multiclass:
            return "multiclass";
        case task_kind::regression:
            return "regression";
    }
    return "unknown";
}

inline result<task_kind> parse_task_kind(std::string_view s) {
    if (s == "binary") return task_kind::binary;
    if (s == "multiclass") return task_kind::multiclass;
    if (s == "regression") return task_kind::regression;
    return invalid("task", "unknown task '" + std::string(s) +
                               "' (expected binary, multiclass or regression)");
}

inline bool is_classification(task_kind t) {
    return t != task_kind::regression;
}

}  // namespace kennel::ml
