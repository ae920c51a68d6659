// Aggregate features: a field Kennel computes from an entity's history in a
// stream (how many facts, or the sum, mean, least, greatest or newest of a
// numeric field) over a window before a moment, instead of reading it from
// the feature fact. Training takes the moment of each example's feature
// fact; serving the moment of the request (or of the stored fact, with
// "stored_features"). Both run aggregate_over() on the same kind of list,
// so a value served is the value training would have computed at that moment.
//
// Plain values and pure functions: thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "store/db.h"
#include "store/status.h"
#include "store/time_util.h"

namespace kennel::ml {

enum class aggregate_op { count, sum, mean, min, max, latest };

const char* aggregate_op_name(aggregate_op op);
result<aggregate_op> parse_aggregate_op(std::string_view name);

struct aggregate_spec {
    std::string field;   // the feature it fills
    std::string stream;  // whose facts, of the same entity
    aggregate_op op = aggregate_op::count;
    // The numeric field aggregated; for count, optional (then only facts
    // holding a number there count).
    std::string of;
    // Facts in [moment - window, moment); none: all before the moment.
    std::optional<double> window_seconds;

    friend bool operator==(const aggregate_spec&, const aggregate_spec&) = default;
};

// The longest window: a century.
inline constexpr double max_aggregate_window_seconds = 100.0 * 365.25 * 86400;

// One standing fact of an entity's history (corrections applied): its
// effective time, the order training uses at equal times (its chain's first
// fact, then its own id) and the value of `of` when it is a number (an
// interval's midpoint, a {"value", "confidence"}'s value).
struct history_fact {
    micros time = 0;
    std::int64_t order_id = 0;
    std::int64_t id = 0;
    std::optional<double> value;
};

// Sorts by time, then order_id, then id: the order aggregate_over needs.
void sort_history(std::vector<history_fact>& facts);

// The first moment a fact must have to count at `moment` (none: the whole
// history before it).
std::optional<micros> window_start(const aggregate_spec& spec, micros moment);

// The aggregate over the facts of `sorted` (sort_history) in the window
// before `moment`. count and sum are 0 over no facts; mean, min, max and
// latest are none (missing, imputed as any missing field) without a value,
// and so is a sum past the largest double.
std::optional<double> aggregate_over(const aggregate_spec& spec,
                                     const std::vector<history_fact>& sorted, micros moment);

// The same over sorted[first, last): facts already cut to the window.
std::optional<double> aggregate_range(const aggregate_spec& spec,
                                      const std::vector<history_fact>& sorted, std::size_t first,
                                      std::size_t last);

// The SQL column reading a fact's value of the field at JSON path ?N (rows
// of `facts` under `alias`), which history_value() turns into the value.
std::string history_value_sql(std::string_view alias, int path_param);
std::optional<double> history_value(const statement& st, int first_column);

// An entity's history for `spec` at `moment`: its standing facts in the
// spec's stream within the window, sorted. Two index walks, as fact_as_of
// (store/facts.h) takes them: facts correcting nothing by their own time,
// corrections by their chain's. Statements are cached on `conn` and reset.
// Throws db_error.
// `until`: past it, the read does not begin, or stops, and throws
// aggregate_out_of_time (a request's deadline; an entity's history takes
// about 1 us a fact in the window; the clock is read every 64 facts).
struct aggregate_out_of_time : std::runtime_error {
    aggregate_out_of_time() : std::runtime_error("the deadline passed while reading the history") {}
};
using steady_deadline = std::optional<std::chrono::steady_clock::time_point>;
std::vector<history_fact> entity_history(connection& conn, const aggregate_spec& spec,
                                         const std::string& entity, micros moment,
                                         steady_deadline until = std::nullopt);

// The aggregates of `specs` for the entity at `moment`, in order: reads
// shared between specs of one stream and field (and a count of facts with
// any read of its stream), each over the widest window. Throws db_error.
std::vector<std::optional<double>> entity_aggregates(connection& conn,
                                                     const std::vector<aggregate_spec>& specs,
                                                     const std::string& entity, micros moment,
                                                     steady_deadline until = std::nullopt);

// JSON: {"stream", "op", "of"?, "window_seconds"?} (a definition's feature
// "aggregate"), and a list of specs with "field" ([] for none), for a
// version's features JSON.
std::string aggregate_to_json(const aggregate_spec& spec);
std::string aggregates_to_json(const std::vector<aggregate_spec>& specs);
// The specs under "aggregates" in a version's features JSON (none: empty).
std::vector<aggregate_spec> aggregates_in_features(std::string_view features_json);

}  // namespace kennel::ml
