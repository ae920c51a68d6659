// Unit tests for aggregate features (ml/aggregate.h): each operation over
// its window, an entity's history read from a real SQLite database with
// corrections applied, and training sets that compute them at each
// example's feature fact, as serving computes them at a moment.
#include <sqlite3.h>
#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "ml/aggregate.h"
#include "ml/definition_json.h"
#include "ml/training_data.h"
#include "store/time_util.h"

#include "tests/unit/test_support.h"

using namespace kennel;
using namespace kennel::ml;
using kennel::testing::fact_db;

namespace {

const micros t0 = 1795168800000000;  // 2026-11-20T10:00:00Z
const micros hour = 3600LL * 1000000;

aggregate_spec spec(aggregate_op op, std::string of = "amount",
                    std::optional<double> window = std::nullopt) {
    aggregate_spec s;
    s.field = "f";
    s.stream = "orders";
    s.op = op;
    s.of = std::move(of);
    s.window_seconds = window;
    return s;
}

std::vector<history_fact> history(std::vector<std::pair<micros, std::optional<double>>> items) {
    std::vector<history_fact> out;
    std::int64_t id = 0;
    for (auto& [t, v] : items) {
        ++id;
        out.push_back({t, id, id, v});
    }
    sort_history(out);
    return out;
}

}  // namespace

TEST_CASE("aggregate_over: each operation over the facts before the moment, in its window",
          "[aggregate]") {
    // Values at t0 - 5h .. t0 + 1h; one fact without a value.
    auto h = history({{t0 - 5 * hour, 10.0},
                      {t0 - 3 * hour, 4.0},
                      {t0 - 2 * hour, std::nullopt},
                      {t0 - 1 * hour, 7.0},
                      {t0, 100.0},  // at the moment: not before it
                      {t0 + hour, 1000.0}});
    const double three_hours = 3 * 3600.0;
    CHECK(aggregate_over(spec(aggregate_op::count, ""), h, t0) == 4.0);
    CHECK(aggregate_over(spec(aggregate_op::count), h, t0) == 3.0);  // holding a number
    CHECK(aggregate_over(spec(aggregate_op::count, "", three_hours), h, t0) == 3.0);
    CHECK(aggregate_over(spec(aggregate_op::sum), h, t0) == 21.0);
    CHECK(aggregate_over(spec(aggregate_op::sum, "amount", three_hours), h, t0) == 11.0);
    CHECK(aggregate_over(spec(aggregate_op::mean), h, t0) == 7.0);
    CHECK(aggregate_over(spec(aggregate_op::min), h, t0) == 4.0);
    CHECK(aggregate_over(spec(aggregate_op::max), h, t0) == 10.0);
    CHECK(aggregate_over(spec(aggregate_op::max, "amount", three_hours), h, t0) == 7.0);
    CHECK(aggregate_over(spec(aggregate_op::latest), h, t0) == 7.0);
    // A window's start is inside it: the fact exactly 3 h before counts.
    CHECK(aggregate_over(spec(aggregate_op::min, "amount", three_hours), h, t0) == 4.0);
    CHECK(aggregate_over(spec(aggregate_op::min, "amount", three_hours - 1e-6), h, t0) == 7.0);
    // A later moment sees more.
    CHECK(aggregate_over(spec(aggregate_op::latest), h, t0 + hour) == 100.0);
    CHECK(aggregate_over(spec(aggregate_op::sum), h, t0 + 2 * hour) == 1121.0);

    SECTION("no facts: counts and sums are 0, the rest none") {
        const std::vector<history_fact> none;
        CHECK(aggregate_over(spec(aggregate_op::count, ""), none, t0) == 0.0);
        CHECK(aggregate_over(spec(aggregate_op::sum), none, t0) == 0.0);
        for (auto op :
             {aggregate_op::mean, aggregate_op::min, aggregate_op::max, aggregate_op::latest}) {
            CHECK_FALSE(aggregate_over(spec(op), none, t0).has_value());
            CHECK_FALSE(aggregate_over(spec(op), h, t0 - 6 * hour).has_value());
        }
        // Only facts without a value in the window.
        CHECK_FALSE(
            aggregate_over(spec(aggregate_op::mean, "amount", 0.5 * 3600), h, t0 - 2 * hour + 1)
                .has_value());
    }
    SECTION("a sum past the largest double is none; a mean of large values is not") {
        const double big = std::numeric_limits<double>::max() / 2;
        auto large = history({{t0 - 3 * hour, big}, {t0 - 2 * hour, big}, {t0 - hour, big}});
        CHECK_FALSE(aggregate_over(spec(aggregate_op::sum), large, t0).has_value());
        auto mean = aggregate_over(spec(aggregate_op::mean), large, t0);
        REQUIRE(mean);
        CHECK(*mean == Approx(big));
        // Values that overflow on the way, in any order: the sum and mean
        // a double holds.
        const double huge = 1.7e308;
        for (auto order :
             {std::vector<double>{huge, huge, -huge}, {huge, -huge, huge}, {-huge, huge, huge}}) {
            auto h3 = history(
                {{t0 - 3 * hour, order[0]}, {t0 - 2 * hour, order[1]}, {t0 - hour, order[2]}});
            CHECK(aggregate_over(spec(aggregate_op::sum), h3, t0) == huge);
            auto m = aggregate_over(spec(aggregate_op::mean), h3, t0);
            REQUIRE(m);
            CHECK(*m == Approx(huge / 3));
        }
    }
    SECTION("at equal times, latest is the later chain, then the later fact") {
        std::vector<history_fact> tied{
            {t0 - hour, 5, 9, 1.0}, {t0 - hour, 7, 8, 2.0}, {t0 - hour, 5, 6, 3.0}};
        sort_history(tied);
        CHECK(aggregate_over(spec(aggregate_op::latest), tied, t0) == 2.0);
    }
}

TEST_CASE("aggregate ops and specs: names, and a version's JSON round trip", "[aggregate]") {
    for (auto op : {aggregate_op::count, aggregate_op::sum, aggregate_op::mean, aggregate_op::min,
                    aggregate_op::max, aggregate_op::latest}) {
        auto back = parse_aggregate_op(aggregate_op_name(op));
        REQUIRE(back);
        CHECK(*back == op);
    }
    CHECK_FALSE(parse_aggregate_op("median"));
    std::vector<aggregate_spec> specs{spec(aggregate_op::sum, "amount", 86400.0),
                                      spec(aggregate_op::count, "")};
    specs[1].field = "n";
    const std::string features =
        R"({"names": ["a"], "aggregates": )" + aggregates_to_json(specs) + "}";
    CHECK(aggregates_in_features(features) == specs);
    CHECK(aggregates_in_features(R"({"names": ["a"]})").empty());
    CHECK(aggregates_in_features("not json").empty());
}

TEST_CASE("entity_history: the entity's standing facts in the window, corrections in place",
          "[aggregate]") {
    fact_db db;
    const auto a = db.add("orders", "u1", t0 - 5 * hour, {{"amount", 10}});
    db.add("orders", "u1", t0 - 3 * hour, {{"amount", {{"lower", 2}, {"upper", 6}}}});
    db.add("orders", "u1", t0 - 2 * hour, {{"amount", {{"value", 8}, {"confidence", 0.9}}}});
    db.add("orders", "u1", t0 - 1 * hour, {{"amount", "a lot"}});
    db.add("orders", "u1", t0 + hour, {{"amount", 1000}});
    db.add("orders", "u2", t0 - hour, {{"amount", 50}});
    db.add("visits", "u1", t0 - hour, {{"amount", 70}});
    // A correction sent later stands at the time of the fact it corrects.
    db.add("orders", "u1", t0 + 2 * hour, {{"amount", 12}}, a);

    auto all = spec(aggregate_op::sum);
    auto h = entity_history(db.conn, all, "u1", t0);
    REQUIRE(h.size() == 4);
    CHECK(h[0].time == t0 - 5 * hour);
    CHECK(h[0].order_id == a);
    CHECK(h[0].value == 12.0);
    CHECK(h[1].value == 4.0);  // the interval's midpoint
    CHECK(h[2].value == 8.0);  // the value with its confidence
    CHECK_FALSE(h[3].value);   // a string is no number
    CHECK(aggregate_over(all, h, t0) == 24.0);
    CHECK(aggregate_over(spec(aggregate_op::count, ""), h, t0) == 4.0);
    // The window is read from the store, not only cut after.
    auto recent = spec(aggregate_op::sum, "amount", 4 * 3600.0);
    auto r = entity_history(db.conn, recent, "u1", t0);
    CHECK(r.size() == 3);
    CHECK(aggregate_over(recent, r, t0) == 12.0);
    // The correction's window test uses its chain's time.
    auto narrow = spec(aggregate_op::count, "", 5.5 * 3600);
    CHECK(entity_history(db.conn, narrow, "u1", t0).size() == 4);
    CHECK(entity_history(db.conn, spec(aggregate_op::count, "", 4.5 * 3600), "u1", t0).size() == 3);
    CHECK(entity_history(db.conn, all, "nobody", t0).empty());
    // Shared reads give what each aggregate's own read gives: counts of
    // facts with a narrower or wider window than the sums of their stream,
    // several fields, another stream.
    std::vector<aggregate_spec> specs{
        spec(aggregate_op::count, "", 2.5 * 3600), spec(aggregate_op::sum, "amount", 4 * 3600.0),
        spec(aggregate_op::max, "amount"),         spec(aggregate_op::count, "", 10 * 3600.0),
        spec(aggregate_op::mean, "other"),         spec(aggregate_op::latest, "amount", 3600.0),
        spec(aggregate_op::count, "amount")};
    aggregate_spec visits = spec(aggregate_op::sum);
    visits.stream = "visits";
    specs.push_back(visits);
    for (micros at : {t0, t0 - 2 * hour, t0 + 3 * hour}) {
        auto shared = entity_aggregates(db.conn, specs, "u1", at);
        REQUIRE(shared.size() == specs.size());
        for (std::size_t i = 0; i < specs.size(); ++i) {
            INFO("spec " << i << " at " << at);
            CHECK(shared[i] ==
                  aggregate_over(specs[i], entity_history(db.conn, specs[i], "u1", at), at));
        }
    }
    CHECK(entity_aggregates(db.conn, specs, "u1", t0)[7] == 70.0);
    // Past its deadline a long read stops (the clock is read every 256 facts).
    for (int i = 0; i < 300; ++i) db.add("orders", "busy", t0 - (i + 1) * 1000000, {{"amount", i}});
    const auto past = std::chrono::steady_clock::now() - std::chrono::seconds(1);
    CHECK_THROWS_AS(entity_history(db.conn, all, "busy", t0, past), aggregate_out_of_time);
    CHECK_THROWS_AS(entity_aggregates(db.conn, specs, "busy", t0, past), aggregate_out_of_time);
    CHECK(entity_history(db.conn, all, "busy", t0, past + std::chrono::hours(1)).size() == 300);
    // The cached statements are reset: none holds a read transaction open.
    int statements = 0;
    for (sqlite3_stmt* st = sqlite3_next_stmt(db.conn.raw(), nullptr); st;
         st = sqlite3_next_stmt(db.conn.raw(), st)) {
        ++statements;
        CHECK(sqlite3_stmt_busy(st) == 0);
    }
    CHECK(statements >= 2);
}

TEST_CASE("training set: aggregates at each example's feature fact, as serving computes them",
          "[aggregate]") {
    fact_db db;
    // u1: orders before its feature fact, one after it (before the label).
    db.add("orders", "u1", t0 - 30 * hour, {{"amount", 1}});
    db.add("orders", "u1", t0 - 3 * hour, {{"amount", 5}});
    db.add("orders", "u1", t0 - hour, {{"amount", 7}});
    db.add("orders", "u1", t0 + hour, {{"amount", 1000}});
    db.add("users", "u1", t0, {{"x", 1}});
    db.add("churn", "u1", t0 + 2 * hour, {{"y", 1}});
    // u2: no orders at all.
    db.add("users", "u2", t0, {{"x", 2}});
    const auto last = db.add("churn", "u2", t0 + 2 * hour, {{"y", 0}});
    // After the snapshot: not counted.
    db.add("orders", "u2", t0 - hour, {{"amount", 3}});

    auto parsed = parse_definition(R"({"task": "regression", "features_from": "users",
        "label": {"stream": "churn", "field": "y"},
        "features": [{"field": "x"},
          {"field": "n_day", "aggregate": {"stream": "orders", "op": "count", "window_seconds": 86400}},
          {"field": "spend", "transform": "log", "aggregate": {"stream": "orders", "op": "sum", "of": "amount"}},
          {"field": "last", "aggregate": {"stream": "orders", "op": "latest", "of": "amount"}}]})");
    REQUIRE(parsed.errors.empty());
    const model_definition& d = parsed.definition;
    REQUIRE(d.aggregates.size() == 3);

    auto set = build_training_set(db.conn, d, last);
    REQUIRE(set);
    REQUIRE(set->rows.size() == 2);
    const auto& u1 = set->rows[0].entity == "u1" ? set->rows[0] : set->rows[1];
    const auto& u2 = set->rows[0].entity == "u1" ? set->rows[1] : set->rows[0];
    CHECK(std::get<double>(u1.features.at("n_day")) == 2.0);
    CHECK(std::get<double>(u1.features.at("spend")) == 13.0);
    CHECK(std::get<double>(u1.features.at("last")) == 7.0);
    CHECK(std::get<double>(u2.features.at("n_day")) == 0.0);
    CHECK(std::get<double>(u2.features.at("spend")) == 0.0);
    CHECK(u2.features.count("last") == 0);  // none: imputed
    // Serving at the feature fact's moment computes the same.
    for (const auto& a : d.aggregates) {
        auto served = aggregate_over(a, entity_history(db.conn, a, "u1", t0), t0);
        REQUIRE(served);
        CHECK(*served == std::get<double>(u1.features.at(a.field)));
    }
    // "aggregate": null is no aggregate: the field is read from facts.
    auto plain = parse_definition(R"({"task": "regression", "features_from": "users",
        "label": {"stream": "churn", "field": "y"},
        "features": [{"field": "x", "aggregate": null}]})");
    REQUIRE(plain.errors.empty());
    CHECK(plain.definition.aggregates.empty());
    CHECK(canonical_definition_json(plain.definition).find("aggregate") == std::string::npos);
    // The canonical definition keeps them; read back, it is the same.
    auto again = parse_definition(canonical_definition_json(d));
    REQUIRE(again.errors.empty());
    CHECK(again.definition.aggregates == d.aggregates);
    CHECK(canonical_definition_json(again.definition) == canonical_definition_json(d));

    SECTION("the live version's aggregates are computed too, for fields the definition drops") {
        aggregate_spec old = d.aggregates[0];
        old.field = "n_old";
        old.window_seconds = 2 * 3600.0;
        auto with_live = build_training_set(db.conn, d, last, {"n_old"}, {old, d.aggregates[1]});
        REQUIRE(with_live);
        const auto& r = with_live->rows[0].entity == "u1" ? with_live->rows[0] : with_live->rows[1];
        CHECK(std::get<double>(r.features.at("n_old")) == 1.0);
        CHECK(std::get<double>(r.features.at("spend")) == 13.0);
    }
}
