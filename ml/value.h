// Raw values and records: what the learning core sees of a fact's data before
// any feature transform, and the kind of task a model solves.
//
// The HTTP edge turns JSON into these types, so ml/ never sees nlohmann::json.
// All types here are plain values: copy them between threads freely; a const
// object may be read from several threads at once.
#pragma once

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "store/status.h"

namespace kennel::ml {

// A numeric value with its uncertainty, e.g. {"lower":27,"upper":33}.
struct interval {
    double lower = 0;
    double upper = 0;

    // The second form when the first overflows ({-1e308, 1e308}); the first
    // kept for all else, so that stored versions answer as they did.
    double midpoint() const {
        const double m = lower + (upper - lower) / 2;
        return std::isfinite(m) ? m : lower / 2 + upper / 2;
    }
    // upper - lower may pass the largest double ({-1e308, 1e308}): taken as
    // the largest, so that the column is scaled like any other (an infinite
    // width made the whole column NaN, and training dropped it as constant).
    double width() const { return std::min(upper - lower, std::numeric_limits<double>::max()); }
    friend bool operator==(const interval&, const interval&) = default;
};

// monostate means missing (absent or JSON null).
using raw_value = std::variant<std::monostate, double, bool, std::string, interval>;

// Field name -> value, sorted by name, each name once, in one vector. A
// record has a handful of fields and the predict path builds one per
// instance: one allocation instead of a tree node per field (under
// bench/predict's batches the nodes, their allocation and rebalancing were
// 5-10% of the server's user time). The interface is the part of
// std::map's that Kennel uses; iteration is read-only, so the order holds.
class raw_record {
public:
    using value_type = std::pair<std::string, raw_value>;
    using const_iterator = std::vector<value_type>::const_iterator;

    raw_record() = default;
    // Like std::map's: of repeated names, the first is kept.
    raw_record(std::initializer_list<value_type> items);

    const_iterator begin() const { return items_.begin(); }
    const_iterator end() const { return items_.end(); }
    std::size_t size() const { return items_.size(); }
    bool empty() const { return items_.empty(); }
    void reserve(std::size_t n) { items_.reserve(n); }

    const_iterator find(std::string_view name) const;
    std::size_t count(std::string_view name) const { return find(name) == end() ? 0 : 1; }
    // Throws std::out_of_range when the name is absent.
    const raw_value& at(std::string_view name) const;
    // The value for `name`, inserted as missing when absent.
    raw_value& operator[](std::string_view name);
    // Inserts unless the name is present (then the record is unchanged);
    // true when inserted. Names arriving in order are appended in O(1).
    bool emplace(std::string name, raw_value value);
    void erase(std::string_view name);
    // A number, or the name removed (missing) for none.
    void set(std::string_view name, std::optional<double> value);

    friend bool operator==(const raw_record&, const raw_record&) = default;

private:
    std::vector<value_type>::iterator lower_bound(std::string_view name);

    std::vector<value_type> items_;
};

// Shortest text that reads back as the same double: stable names and
// category values ("14", "0.5") whatever the locale, and numbers in messages.
std::string format_number(double x);

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
