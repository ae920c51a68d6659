#include "ml/aggregate.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <tuple>

#include "ml/value.h"

namespace kennel::ml {

using json = nlohmann::json;

const char* aggregate_op_name(aggregate_op op) {
    switch (op) {
        case aggregate_op::count:
            return "count";
        case aggregate_op::sum:
            return "sum";
        case aggregate_op::mean:
            return "mean";
        case aggregate_op::min:
            return "min";
        case aggregate_op::max:
            return "max";
        case aggregate_op::latest:
            return "latest";
    }
    return "unknown";
}

result<aggregate_op> parse_aggregate_op(std::string_view name) {
    for (aggregate_op op : {aggregate_op::count, aggregate_op::sum, aggregate_op::mean,
                            aggregate_op::min, aggregate_op::max, aggregate_op::latest}) {
        if (name == aggregate_op_name(op)) return op;
    }
    return invalid("op", "must be count, sum, mean, min, max or latest");
}

void sort_history(std::vector<history_fact>& facts) {
    std::sort(facts.begin(), facts.end(), [](const history_fact& a, const history_fact& b) {
        return std::tie(a.time, a.order_id, a.id) < std::tie(b.time, b.order_id, b.id);
    });
}

std::optional<micros> window_start(const aggregate_spec& spec, micros moment) {
    if (!spec.window_seconds) return std::nullopt;
    // Whole microseconds: a window is at most a century (3.2e15 us), so
    // the start stays far inside int64 for any stored time.
    return moment - static_cast<micros>(std::llround(*spec.window_seconds * 1e6));
}

std::optional<double> aggregate_range(const aggregate_spec& spec,
                                      const std::vector<history_fact>& sorted, std::size_t first,
                                      std::size_t last) {
    std::int64_t n = 0;
    double sum = 0, mean = 0, low = 0, high = 0;
    std::optional<double> newest;
    for (std::size_t i = first; i < last; ++i) {
        const auto& v = sorted[i].value;
        if (!v) {
            if (spec.op == aggregate_op::count && spec.of.empty()) ++n;
            continue;
        }
        ++n;
        sum += *v;
        // A running mean: a sum of large values may overflow where their
        // mean does not.
        mean += (*v - mean) / static_cast<double>(n);
        low = n == 1 ? *v : std::min(low, *v);
        high = n == 1 ? *v : std::max(high, *v);
        newest = *v;
    }
    switch (spec.op) {
        case aggregate_op::count:
            return static_cast<double>(n);
        case aggregate_op::sum:
            if (!std::isfinite(sum)) return std::nullopt;
            return sum;
        case aggregate_op::mean:
            if (n == 0) return std::nullopt;
            return mean;
        case aggregate_op::min:
            if (n == 0) return std::nullopt;
            return low;
        case aggregate_op::max:
            if (n == 0) return std::nullopt;
            return high;
        case aggregate_op::latest:
            return newest;
    }
    return std::nullopt;
}

std::optional<double> aggregate_over(const aggregate_spec& spec,
                                     const std::vector<history_fact>& sorted, micros moment) {
    const auto at_or_after = [&](micros t) {
        return static_cast<std::size_t>(
            std::lower_bound(sorted.begin(), sorted.end(), t,
                             [](const history_fact& f, micros x) { return f.time < x; }) -
            sorted.begin());
    };
    const std::size_t last = at_or_after(moment);
    const auto start = window_start(spec, moment);
    const std::size_t first = start ? std::min(at_or_after(*start), last) : 0;
    return aggregate_range(spec, sorted, first, last);
}

std::string history_value_sql(std::string_view alias, int path_param) {
    const std::string d = std::string(alias) + ".data";
    const std::string p = "?" + std::to_string(path_param);
    const auto numeric = [&](const std::string& path) {
        return "CASE WHEN json_type(" + d + ", " + path +
               ") IN ('integer', 'real') THEN json_extract(" + d + ", " + path + ") END";
    };
    // A number; an interval's bounds; a {"value", "confidence"}'s value.
    return numeric(p) + ", " + numeric(p + " || '.lower'") + ", " + numeric(p + " || '.upper'") +
           ", " + numeric(p + " || '.value'");
}

std::optional<double> history_value(const statement& st, int c) {
    if (auto x = st.column_opt_double(c)) return x;
    auto lo = st.column_opt_double(c + 1), hi = st.column_opt_double(c + 2);
    if (lo && hi) return interval{*lo, *hi}.midpoint();
    return st.column_opt_double(c + 3);
}

std::vector<history_fact> entity_history(connection& conn, const aggregate_spec& spec,
                                         const std::string& entity, micros moment) {
    const auto start = window_start(spec, moment);
    statement& plain =
        conn.cached("SELECT f.event_time, f.id, f.id, " + history_value_sql("f", 5) +
                    " FROM facts f WHERE f.stream = ?1 AND f.entity = ?2"
                    " AND f.event_time >= ?3 AND f.event_time < ?4"
                    " AND NOT EXISTS (SELECT 1 FROM fact_origins x WHERE x.fact = f.id)"
                    " AND NOT EXISTS (SELECT 1 FROM fact_origins newer WHERE newer.origin = f.id)");
    statement& corrected = conn.cached(
        "SELECT o.origin_time, o.origin, f.id, " + history_value_sql("f", 5) +
        " FROM fact_origins o JOIN facts f ON f.id = o.fact"
        " WHERE o.stream = ?1 AND o.origin_time >= ?3 AND o.origin_time < ?4 AND f.entity = ?2"
        " AND NOT EXISTS (SELECT 1 FROM fact_origins newer WHERE newer.origin = o.origin"
        " AND newer.fact > f.id)");
    std::vector<history_fact> out;
    const std::string path = "$.\"" + (spec.of.empty() ? std::string("__none__") : spec.of) + "\"";
    for (statement* st : {&plain, &corrected}) {
        st->bind(1, spec.stream)
            .bind(2, entity)
            .bind(3, start ? *start : std::numeric_limits<micros>::min())
            .bind(4, moment)
            .bind(5, path);
        while (st->step()) {
            out.push_back({st->column_int(0), st->column_int(1), st->column_int(2),
                           spec.of.empty() ? std::nullopt : history_value(*st, 3)});
        }
        // A cached statement left on a row holds its read transaction open.
        st->reset();
    }
    sort_history(out);
    return out;
}

namespace {

json spec_json(const aggregate_spec& s) {
    json j = {{"stream", s.stream}, {"op", aggregate_op_name(s.op)}};
    if (!s.of.empty()) j["of"] = s.of;
    if (s.window_seconds) j["window_seconds"] = *s.window_seconds;
    return j;
}

}  // namespace

std::string aggregates_to_json(const std::vector<aggregate_spec>& specs) {
    json list = json::array();
    for (const auto& s : specs) {
        json j = spec_json(s);
        j["field"] = s.field;
        list.push_back(std::move(j));
    }
    return list.dump();
}

std::vector<aggregate_spec> aggregates_in_features(std::string_view features_json) {
    std::vector<aggregate_spec> out;
    json j = json::parse(features_json, nullptr, false);
    if (!j.is_object()) return out;
    auto list = j.find("aggregates");
    if (list == j.end() || !list->is_array()) return out;
    for (const auto& item : *list) {
        if (!item.is_object()) continue;
        aggregate_spec s;
        s.field = item.value("field", "");
        s.stream = item.value("stream", "");
        auto op = parse_aggregate_op(item.value("op", ""));
        if (s.field.empty() || s.stream.empty() || !op) continue;
        s.op = *op;
        s.of = item.value("of", "");
        if (auto w = item.find("window_seconds"); w != item.end() && w->is_number())
            s.window_seconds = w->get<double>();
        out.push_back(std::move(s));
    }
    return out;
}

}  // namespace kennel::ml
