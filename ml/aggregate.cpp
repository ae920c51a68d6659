#include "ml/aggregate.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <nlohmann/json.hpp>
#include <tuple>

#include "ml/features.h"
#include "ml/raw_json.h"
#include "ml/value.h"
#include "store/facts.h"

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
    // A sum in long double (on x86-64, a wider exponent): 1.7e308 + 1.7e308
    // - 1.7e308 does not overflow on the way, whatever the facts' order.
    long double sum = 0;
    double mean = 0, low = 0, high = 0;
    std::optional<double> newest;
    for (std::size_t i = first; i < last; ++i) {
        const auto& v = sorted[i].value;
        if (!v) {
            if (spec.op == aggregate_op::count && spec.of.empty()) ++n;
            continue;
        }
        ++n;
        sum += *v;
        // A running mean, each term divided first: a sum of large values,
        // or the difference of two, may overflow where their mean does not.
        mean += *v / static_cast<double>(n) - mean / static_cast<double>(n);
        low = n == 1 ? *v : std::min(low, *v);
        high = n == 1 ? *v : std::max(high, *v);
        newest = *v;
    }
    switch (spec.op) {
        case aggregate_op::count:
            return static_cast<double>(n);
        case aggregate_op::sum: {
            const double total = static_cast<double>(sum);
            if (!std::isfinite(total)) return std::nullopt;
            return total;
        }
        case aggregate_op::mean:
            if (n == 0 || !std::isfinite(mean)) return std::nullopt;
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
    // The value as JSON text, one parse of the fact a row: json_type and
    // json_extract apart cost a parse each, and reading the four forms
    // apart (number, bounds, value) twice as much again.
    return std::string(alias) + ".data -> ?" + std::to_string(path_param);
}

std::optional<double> history_value(const statement& st, int c) {
    const auto text = st.column_opt_text(c);
    if (!text || text->empty()) return std::nullopt;
    const char first = text->front();
    if (first == '-' || (first >= '0' && first <= '9')) {
        // SQLite writes numbers as JSON does: strtod reads them back exactly.
        char* end = nullptr;
        const double x = std::strtod(text->c_str(), &end);
        if (end != text->c_str() + text->size() || !std::isfinite(x)) return std::nullopt;
        return x;
    }
    if (first != '{') return std::nullopt;  // a string, true, false, null, an array
    // An interval's midpoint, a {"value", "confidence"}'s value: read as a
    // feature's value is (ml/raw_json.h, as_number).
    return as_number(raw_value_from_json(*text));
}

std::vector<history_fact> entity_history(connection& conn, const aggregate_spec& spec,
                                         const std::string& entity, micros moment,
                                         steady_deadline until) {
    const auto start = window_start(spec, moment);
    // The entity's two walks (store/facts.h), each with or without the
    // value: a count of facts reads none, so no fact's JSON is parsed (?5 is
    // selected only so that both forms take the same parameters). Built
    // once: this runs on the predict path.
    const auto walk_sql = [](bool values) {
        std::vector<std::string> out;
        for (const standing_walk& w : entity_standing_walks) {
            out.push_back(std::string("SELECT ") + w.time + ", " + w.chain + ", f.id, " +
                          (values ? history_value_sql("f", 5) : std::string("?5")) + " " +
                          w.from_where + " AND " + w.time + " >= ?3 AND " + w.time + " < ?4");
        }
        return out;
    };
    static const std::vector<std::string> with_values = walk_sql(true), counts = walk_sql(false);
    const std::vector<std::string>& sql = spec.of.empty() ? counts : with_values;
    // Past the deadline already (an earlier read took it): not begun.
    if (until && std::chrono::steady_clock::now() > *until) throw aggregate_out_of_time();
    std::vector<history_fact> out;
    const std::string path = "$.\"" + spec.of + "\"";
    for (const std::string& text : sql) {
        statement* st = &conn.cached(text);
        // Reset before use too: a read that threw left it mid-rows.
        st->reset();
        st->bind(1, spec.stream)
            .bind(2, entity)
            .bind(3, start ? *start : std::numeric_limits<micros>::min())
            .bind(4, moment)
            .bind(5, path);
        while (st->step()) {
            out.push_back({st->column_int(0), st->column_int(1), st->column_int(2),
                           spec.of.empty() ? std::nullopt : history_value(*st, 3)});
            // The clock every 64 facts: a read costs about 1 us a fact.
            if (until && out.size() % 64 == 0 && std::chrono::steady_clock::now() > *until) {
                st->reset();
                throw aggregate_out_of_time();
            }
        }
        // A cached statement left on a row holds its read transaction open.
        st->reset();
    }
    sort_history(out);
    return out;
}

std::vector<std::optional<double>> entity_aggregates(connection& conn,
                                                     const std::vector<aggregate_spec>& specs,
                                                     const std::string& entity, micros moment,
                                                     steady_deadline until) {
    // One read per stream and field: the aggregates of one field (a sum over
    // 7 days, a mean over 30) share the widest window's facts, and a count
    // of facts shares any read of its stream (it reads no value).
    struct read {
        aggregate_spec spec;  // stream, of, the widest window
        std::vector<std::size_t> members;
    };
    const auto counts_facts = [](const aggregate_spec& a) {
        return a.op == aggregate_op::count && a.of.empty();
    };
    const auto widen = [](aggregate_spec& into, const aggregate_spec& a) {
        if (!into.window_seconds || !a.window_seconds)
            into.window_seconds.reset();
        else
            into.window_seconds = std::max(*into.window_seconds, *a.window_seconds);
    };
    std::vector<read> reads;
    // Aggregates of a field first, so that counts of facts join their reads.
    for (int pass = 0; pass < 2; ++pass) {
        for (std::size_t i = 0; i < specs.size(); ++i) {
            const aggregate_spec& a = specs[i];
            if (counts_facts(a) != (pass == 1)) continue;
            read* into = nullptr;
            for (auto& r : reads) {
                if (r.spec.stream == a.stream && (r.spec.of == a.of || pass == 1)) {
                    into = &r;
                    break;
                }
            }
            if (!into) {
                reads.push_back({a, {}});
                into = &reads.back();
            } else {
                widen(into->spec, a);
            }
            into->members.push_back(i);
        }
    }
    std::vector<std::optional<double>> out(specs.size());
    for (const auto& r : reads) {
        const auto history = entity_history(conn, r.spec, entity, moment, until);
        for (std::size_t m : r.members) out[m] = aggregate_over(specs[m], history, moment);
    }
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

std::string aggregate_to_json(const aggregate_spec& spec) {
    return spec_json(spec).dump();
}

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
