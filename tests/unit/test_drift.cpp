// Feature drift: the training profile, its JSON, the stability index, and
// the lock-free counts with their window.
#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <memory>
#include <numeric>
#include <thread>
#include <vector>

#include "ml/drift.h"

using namespace kennel;
using namespace kennel::ml;
using namespace std::chrono_literals;

namespace {

feature_spec spec(const std::string& field, transform_kind t) {
    feature_spec s;
    s.field = field;
    s.transform = t;
    return s;
}

double sum(const std::vector<double>& v) {
    return std::accumulate(v.begin(), v.end(), 0.0);
}

const field_profile& field_of(const feature_profile& p, const std::string& name) {
    for (const auto& f : p.fields) {
        if (f.field == name) return f;
    }
    FAIL("no field " << name);
    throw std::logic_error("unreachable");
}

}  // namespace

TEST_CASE("drift: numbers are profiled in ten bins at the training deciles", "[drift]") {
    std::vector<raw_record> rows;
    for (int i = 0; i < 1000; ++i) {
        raw_record r;
        if (i % 10 != 9) r.emplace("x", static_cast<double>(i));  // 100 rows miss x
        rows.push_back(std::move(r));
    }
    feature_profile p = profile_rows({spec("x", transform_kind::numeric)}, rows);
    REQUIRE(p.rows == 1000);
    REQUIRE(p.fields.size() == 1);
    const field_profile& x = p.fields[0];
    CHECK(x.kind == profile_kind::number);
    REQUIRE(x.edges.size() == 9);
    CHECK(std::is_sorted(x.edges.begin(), x.edges.end()));
    REQUIRE(x.shares.size() == 11);  // ten bins and missing
    for (std::size_t k = 0; k < 10; ++k) CHECK(x.shares[k] == Approx(0.09).margin(0.002));
    CHECK(x.shares[10] == Approx(0.1));
    CHECK(sum(x.shares) == Approx(1.0));
    // Values fall in the bin whose lower edge they reach.
    CHECK(x.bin_of(-5.0) == 0);
    CHECK(x.bin_of(x.edges[0]) == 1);
    CHECK(x.bin_of(1e9) == 9);
    CHECK(x.bin_of(raw_value{}) == 10);        // missing
    CHECK(x.bin_of(std::string("12")) == 10);  // a string is no number
    CHECK(x.bin_of(interval{-10, -8}) == 0);   // an interval reads its midpoint
    CHECK(x.bin_name(0).rfind("(-inf, ", 0) == 0);
    CHECK(x.bin_name(10) == "missing");
}

TEST_CASE("drift: ties merge bins and leave none empty in training", "[drift]") {
    std::vector<raw_record> rows;
    for (int i = 0; i < 100; ++i) rows.push_back({{"n", i < 70 ? 0.0 : static_cast<double>(i)}});
    feature_profile p = profile_rows({spec("n", transform_kind::log)}, rows);
    const field_profile& n = p.fields.at(0);
    CHECK(std::adjacent_find(n.edges.begin(), n.edges.end(),
                             [](double a, double b) { return !(a < b); }) == n.edges.end());
    CHECK(n.shares[0] == Approx(0.7));  // every zero in the first bin
    for (std::size_t k = 0; k < n.bins(); ++k) CHECK(n.shares[k] > 0);

    // A constant field: one bin holding everything.
    std::vector<raw_record> same(20, raw_record{{"c", 4.0}});
    const feature_profile constant = profile_rows({spec("c", transform_kind::numeric)}, same);
    const field_profile& c = constant.fields.at(0);
    CHECK(c.edges.empty());
    CHECK(c.shares == std::vector<double>{1.0, 0.0});
    CHECK(c.bin_name(0) == "all");
}

TEST_CASE("drift: categories keep the 20 most frequent values, then other", "[drift]") {
    std::vector<raw_record> rows;
    // Value v<k> appears 30 - k times, for k = 0..24: v20..v24 are the rarest.
    for (int k = 0; k < 25; ++k) {
        for (int i = 0; i < 30 - k; ++i)
            rows.push_back({{"c", "v" + std::to_string(100 + k)}, {"b", true}});
    }
    rows.push_back({{"b", 0.0}});  // c missing; b read as false
    feature_profile p =
        profile_rows({spec("c", transform_kind::category), spec("b", transform_kind::boolean),
                      spec("t", transform_kind::text)},
                     rows);
    REQUIRE(p.fields.size() == 2);    // text is not profiled
    CHECK(p.fields[0].field == "b");  // sorted by name
    const field_profile& c = field_of(p, "c");
    CHECK(c.kind == profile_kind::category);
    CHECK_FALSE(c.boolean);
    REQUIRE(c.values.size() == profile_category_values);
    CHECK(std::is_sorted(c.values.begin(), c.values.end()));
    CHECK(c.values.front() == "v100");
    CHECK(c.values.back() == "v119");
    const double total = static_cast<double>(rows.size());
    CHECK(c.shares[20] == Approx((10 + 9 + 8 + 7 + 6) / total));  // other
    CHECK(c.shares[21] == Approx(1 / total));                     // missing
    CHECK(c.bin_of(std::string("v105")) == 5);
    CHECK(c.bin_of(std::string("v124")) == 20);
    CHECK(c.bin_of(std::string("new")) == 20);
    CHECK(c.bin_of(raw_value{}) == 21);

    const field_profile& b = field_of(p, "b");
    CHECK(b.boolean);
    CHECK(b.values == std::vector<std::string>{"false", "true"});
    CHECK(b.shares[0] == Approx(1 / total));
    CHECK(b.bin_of(1.0) == 1);  // the number 1 reads as true, as the transform reads it
    CHECK(b.bin_of(true) == 1);
    CHECK(b.bin_of(std::string("true")) == 3);  // a string is no boolean: missing
}

// A value spelled like a special bin had the same name as that bin in the
// drift report: only the kind tells them apart.
TEST_CASE("drift: bins say what they hold, apart from their names", "[drift]") {
    std::vector<raw_record> rows = {
        {{"c", "other"}, {"x", 1.0}}, {{"c", "missing"}, {"x", 2.0}}, {{"c", "x"}}};
    feature_profile p = profile_rows(
        {spec("c", transform_kind::category), spec("x", transform_kind::numeric)}, rows);
    const field_profile& c = field_of(p, "c");
    REQUIRE(c.bins() == 4);  // three values, other; missing after
    std::vector<std::pair<std::string, std::string>> got;
    for (std::size_t k = 0; k <= c.bins(); ++k) got.emplace_back(c.bin_name(k), c.bin_kind(k));
    CHECK(got == std::vector<std::pair<std::string, std::string>>{{"missing", "value"},
                                                                  {"other", "value"},
                                                                  {"x", "value"},
                                                                  {"other", "other"},
                                                                  {"missing", "missing"}});
    const field_profile& x = field_of(p, "x");
    CHECK(std::string(x.bin_kind(0)) == "range");
    CHECK(std::string(x.bin_kind(x.bins())) == "missing");
}

TEST_CASE("drift: a profile reads back from its JSON, and bad JSON is refused", "[drift]") {
    std::vector<raw_record> rows;
    for (int i = 0; i < 50; ++i) {
        rows.push_back({{"x", i * 0.5}, {"c", std::string(i % 3 ? "a" : "b")}});
    }
    feature_profile p = profile_rows(
        {spec("x", transform_kind::numeric), spec("c", transform_kind::category)}, rows);
    auto back = profile_from_json(profile_to_json(p));
    REQUIRE(back);
    REQUIRE(back->fields.size() == p.fields.size());
    CHECK(back->rows == p.rows);
    for (std::size_t i = 0; i < p.fields.size(); ++i) {
        CHECK(back->fields[i].field == p.fields[i].field);
        CHECK(back->fields[i].kind == p.fields[i].kind);
        CHECK(back->fields[i].edges == p.fields[i].edges);
        CHECK(back->fields[i].values == p.fields[i].values);
        CHECK(back->fields[i].shares == p.fields[i].shares);
    }
    auto in_features = profile_in_features("{\"names\":[],\"profile\":" + profile_to_json(p) + "}");
    REQUIRE(in_features);
    CHECK(in_features->fields.size() == 2);
    CHECK_FALSE(profile_in_features("{\"names\":[\"a\"],\"classes\":[]}"));  // an older version

    CHECK_FALSE(profile_from_json("not json"));
    CHECK_FALSE(profile_from_json("{\"fields\":3}"));
    CHECK_FALSE(profile_from_json(
        R"({"fields":[{"field":"x","kind":"number","edges":[2,1],"shares":[0.5,0.5,0,0]}]})"));
    CHECK_FALSE(profile_from_json(
        R"({"fields":[{"field":"x","kind":"number","edges":[1,2],"shares":[1,0]}]})"));
    CHECK_FALSE(profile_from_json(
        R"({"fields":[{"field":"x","kind":"shape","edges":[],"shares":[1,0]}]})"));
    CHECK_FALSE(profile_from_json(
        R"({"fields":[{"field":"c","kind":"category","values":["b","a"],"shares":[0.5,0.5,0,0]}]})"));
    CHECK_FALSE(profile_from_json(
        R"({"fields":[{"field":"y","kind":"number","edges":[],"shares":[1,0]},)"
        R"({"field":"x","kind":"number","edges":[],"shares":[1,0]}]})"));  // out of order
    CHECK(profile_from_json(
        R"({"fields":[{"field":"x","kind":"number","edges":[],"shares":[1,0]}]})"));
}

TEST_CASE("drift: a model's answers are profiled like a field", "[drift]") {
    // What an answer counts as, by task.
    CHECK(std::get<double>(prediction_output(task_kind::regression, 3.5, {}, "")) == 3.5);
    CHECK(std::get<double>(prediction_output(task_kind::binary, 1, {0.3, 0.7}, "yes")) == 0.7);
    CHECK(std::holds_alternative<std::monostate>(
        prediction_output(task_kind::binary, 1, {}, "yes")));  // no probabilities: missing
    CHECK(std::get<std::string>(
              prediction_output(task_kind::multiclass, 2, {0.1, 0.2, 0.7}, "c")) == "c");

    std::vector<raw_value> values;
    for (int i = 0; i < 200; ++i) values.emplace_back(i / 200.0);
    field_profile p = profile_predictions(task_kind::binary, values);
    CHECK(p.field == "prediction");
    CHECK(p.kind == profile_kind::number);
    CHECK(p.edges.size() == 9);
    CHECK(p.shares.back() == 0);  // none missing

    std::vector<raw_value> labels;
    for (int i = 0; i < 90; ++i) labels.emplace_back(std::string(i % 3 ? "a" : "b"));
    labels.emplace_back(std::monostate{});
    field_profile c = profile_predictions(task_kind::multiclass, labels);
    CHECK(c.kind == profile_kind::category);
    CHECK(c.values == std::vector<std::string>{"a", "b"});
    CHECK(c.shares[0] == Approx(60.0 / 91));
    CHECK(c.shares.back() == Approx(1.0 / 91));

    // Kept in the profile's JSON, and counted by the monitor.
    std::vector<raw_record> rows(10, raw_record{{"x", 1.0}});
    feature_profile fp = profile_rows({spec("x", transform_kind::numeric)}, rows);
    fp.prediction = p;
    auto back = profile_from_json(profile_to_json(fp));
    REQUIRE(back);
    REQUIRE(back->prediction);
    CHECK(back->prediction->edges == p.edges);
    CHECK(back->prediction->shares == p.shares);
    CHECK_FALSE(profile_from_json(
        R"({"fields":[],"prediction":{"field":"prediction","kind":"number","edges":[],"shares":[1]}})"));

    drift_monitor m(fp);
    for (int i = 0; i < 40; ++i) m.observe_prediction(0.999);  // every answer in the top bin
    m.observe_prediction(std::monostate{});
    drift_counts counts = m.counts();
    CHECK(counts.predicted == 41);
    CHECK(counts.observed == 0);  // answers are not requests
    REQUIRE(counts.prediction.size() == 11);
    CHECK(counts.prediction[9] == 40);
    CHECK(counts.prediction[10] == 1);
    drift_report r = compare_to_profile(m.reference(), counts);
    REQUIRE(r.prediction);
    CHECK(r.prediction->psi > 1);
    CHECK(r.worst_field.empty());  // no field was counted

    // Without a prediction profile (an older version), answers are not counted.
    drift_monitor older(profile_rows({spec("x", transform_kind::numeric)}, rows));
    older.observe_prediction(0.5);
    CHECK(older.counts().predicted == 0);
    CHECK_FALSE(compare_to_profile(older.reference(), older.counts()).prediction);
}

TEST_CASE("drift: the population stability index", "[drift]") {
    // The same shares: 0, however many were counted.
    CHECK(population_stability_index({0.25, 0.25, 0.5}, {25, 25, 50}) == Approx(0).margin(1e-12));
    CHECK(population_stability_index({0.25, 0.25, 0.5}, {0, 0, 0}) == 0);  // nothing counted
    // By hand: (0.9 - 0.5) ln(0.9/0.5) + (0.1 - 0.5) ln(0.1/0.5).
    CHECK(population_stability_index({0.5, 0.5}, {90, 10}) ==
          Approx(0.4 * std::log(1.8) + 0.4 * std::log(5.0)));
    // An empty bin counts through the 1e-4 floor instead of dividing by zero.
    const double psi = population_stability_index({1.0, 0.0}, {50, 50});
    CHECK(std::isfinite(psi));
    CHECK(psi == Approx((0.5 - 1.0) * std::log(0.5) + (0.5 - 1e-4) * std::log(0.5 / 1e-4)));
}

TEST_CASE("drift: the monitor counts values into the profile's bins, from many threads",
          "[drift]") {
    std::vector<raw_record> rows;
    for (int i = 0; i < 100; ++i)
        rows.push_back({{"x", static_cast<double>(i)}, {"c", std::string(i % 2 ? "odd" : "even")}});
    drift_monitor m(profile_rows(
        {spec("x", transform_kind::numeric), spec("c", transform_kind::category)}, rows));
    const auto& ref = m.reference();
    REQUIRE(ref.fields.size() == 2);  // c, x

    // Values as in training: the index stays near 0.
    for (int i = 0; i < 100; ++i) m.observe(rows[static_cast<std::size_t>(i)]);
    drift_report same = compare_to_profile(ref, m.counts());
    CHECK(same.observed == 100);
    for (const auto& f : same.fields) CHECK(f.psi == Approx(0).margin(1e-9));

    // Four threads, each 5000 records with x far above training and c missing.
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&m] {
            for (int i = 0; i < 5000; ++i) m.observe(raw_record{{"x", 1000.0}});
        });
    }
    for (auto& t : threads) t.join();
    drift_counts c = m.counts();
    CHECK(c.observed == 20100);
    REQUIRE(c.bins.size() == 2);
    CHECK(c.bins[0].back() == 20000);                     // c missing
    CHECK(c.bins[1][ref.fields[1].bins() - 1] == 20010);  // x in the top bin
    drift_report shifted = compare_to_profile(ref, c);
    CHECK(shifted.worst_psi > 1);
    CHECK((shifted.worst_field == "x" || shifted.worst_field == "c"));
    REQUIRE(shifted.fields[1].observed.size() == ref.fields[1].bins() + 1);
    CHECK(sum(shifted.fields[1].observed) == Approx(1.0));
    CHECK(sum(shifted.fields[1].expected) == Approx(1.0));
}

TEST_CASE("drift: counts stay exact across many monitors and threads", "[drift]") {
    // More monitors than a thread's cache holds, made and dropped in turn:
    // each must count into its own counters, never another's.
    std::vector<raw_record> rows(10, raw_record{{"x", 1.0}});
    const feature_profile p = profile_rows({spec("x", transform_kind::numeric)}, rows);
    for (int generation = 0; generation < 3; ++generation) {
        std::vector<std::unique_ptr<drift_monitor>> monitors;
        for (int i = 0; i < 150; ++i) monitors.push_back(std::make_unique<drift_monitor>(p));
        std::vector<std::thread> threads;
        for (int t = 0; t < 3; ++t) {
            threads.emplace_back([&monitors, &rows] {
                for (int round = 0; round < 4; ++round) {
                    for (const auto& m : monitors) m->observe(rows[0]);
                }
            });
        }
        for (auto& t : threads) t.join();
        for (const auto& m : monitors) {
            drift_counts c = m->counts();
            REQUIRE(c.observed == 12);
            REQUIRE(c.bins.at(0).at(0) == 12);
        }
    }
}

TEST_CASE("drift: the window starts at the oldest snapshot it still needs", "[drift]") {
    std::vector<raw_record> rows(10, raw_record{{"x", 1.0}});
    drift_monitor m(profile_rows({spec("x", transform_kind::numeric)}, rows));
    CHECK_FALSE(m.recent());  // no snapshot yet
    const auto t0 = std::chrono::steady_clock::now();
    const auto window = 60s;
    m.mark(t0, window);
    for (int i = 0; i < 5; ++i) m.observe(rows[0]);
    m.mark(t0 + 1s, window);  // under window / 30 after the last: not taken
    m.mark(t0 + 30s, window);
    for (int i = 0; i < 3; ++i) m.observe(rows[0]);
    auto r = m.recent();
    REQUIRE(r);
    CHECK(r->from == t0);
    CHECK(r->counts.observed == 8);
    // 91 s on, the 30 s snapshot starts the last 60 s window: the first goes.
    m.mark(t0 + 91s, window);
    r = m.recent();
    REQUIRE(r);
    CHECK(r->from == t0 + 30s);
    CHECK(r->counts.observed == 3);
    CHECK(r->counts.bins.at(0).at(0) == 3);
    CHECK(m.counts().observed == 8);  // since the monitor was made

    // Values asked before the first look (a version just loaded, before the
    // supervisor's tick) are in the window: it starts at zero.
    drift_monitor fresh(profile_rows({spec("x", transform_kind::numeric)}, rows));
    for (int i = 0; i < 4; ++i) fresh.observe(rows[0]);
    fresh.mark(t0, window);
    fresh.observe(rows[0]);
    r = fresh.recent();
    REQUIRE(r);
    CHECK(r->from == t0);
    CHECK(r->counts.observed == 5);
    CHECK(r->counts.bins.at(0).at(0) == 5);

    drift_counts a{10, {{4, 6}}, 5, {2, 3}}, b{3, {{1, 2}}, 1, {1, 0}};
    drift_counts d = subtract(a, b);
    CHECK(d.observed == 7);
    CHECK(d.bins == std::vector<std::vector<std::uint64_t>>{{3, 4}});
    CHECK(d.predicted == 4);
    CHECK(d.prediction == std::vector<std::uint64_t>{1, 3});
}
