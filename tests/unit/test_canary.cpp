// The canary policy's judgement (ml/canary.h): one look at the canary arm
// against the control arm, and the canary's JSON as the experiments table
// keeps it.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>

#include "ml/canary.h"
#include "ml/definition_json.h"
#include "store/db.h"
#include "tests/unit/test_support.h"

using namespace kennel;
using namespace kennel::ml;
using json = nlohmann::json;

namespace {

canary_state two_against_one(double max_loss = 0) {
    canary_state s;
    s.version = 2;
    s.against = 1;
    s.job = 7;
    s.policy.share = 0.25;
    s.policy.entities = 100;
    s.policy.max_loss = max_loss;
    s.deadline = 1'000'000;
    return s;
}

live_comparison canary_against_control(const std::string& metric, bool higher, double diff,
                                       double lower, double upper, std::int64_t entities = 120,
                                       std::int64_t against = 300) {
    live_comparison c;
    c.version = 2;
    c.arm = canary_arm;
    c.against_arm = control_arm;
    c.against_version = 1;
    c.metric = metric;
    c.higher_is_better = higher;
    c.entities = entities;
    c.against_entities = against;
    c.difference = diff;
    c.lower = lower;
    c.upper = upper;
    c.verdict = "inconclusive";
    return c;
}

live_report with(const live_comparison& c) {
    live_report r;
    r.reference = live_report::reference_group{control_arm, 1};
    r.comparisons.push_back(c);
    return r;
}

}  // namespace

TEST_CASE("canary: waits for outcomes from its entities on both sides", "[canary]") {
    const canary_state s = two_against_one();
    auto v = judge_canary(live_report{}, s);
    CHECK(v.what == canary_verdict::kind::wait);
    CHECK(v.reason == "no outcome of the canary arm against the control arm yet");

    v = judge_canary(with(canary_against_control("roc_auc", true, 0.01, -0.02, 0.04, 99, 300)), s);
    CHECK(v.what == canary_verdict::kind::wait);
    CHECK(v.reason ==
          "outcomes from 99 and 300 entities of the 100 a side it is judged on (canary, control)");
    v = judge_canary(with(canary_against_control("roc_auc", true, 0.01, -0.02, 0.04, 300, 99)), s);
    CHECK(v.what == canary_verdict::kind::wait);

    // An interval that could not be computed is waited on (the deadline ends it).
    v = judge_canary(
        with(canary_against_control("roc_auc", true, 0.01, std::nan(""), std::nan(""))), s);
    CHECK(v.what == canary_verdict::kind::wait);
    CHECK(v.reason ==
          "roc_auc's interval could not be computed over outcomes from 120 and 300 "
          "entities");

    // A group of the canary arm answered by live's version (its fallbacks)
    // is not the canary.
    live_comparison fallback = canary_against_control("roc_auc", true, 0.01, -0.02, 0.04);
    fallback.version = 1;
    v = judge_canary(with(fallback), s);
    CHECK(v.what == canary_verdict::kind::wait);
}

TEST_CASE("canary: publishes unless the interval lies wholly past the loss allowed", "[canary]") {
    SECTION("higher is better: worse when even the interval's upper end is a loss past max_loss") {
        auto v = judge_canary(with(canary_against_control("roc_auc", true, -0.05, -0.08, -0.02)),
                              two_against_one());
        CHECK(v.what == canary_verdict::kind::fail);
        CHECK(v.reason ==
              "roc_auc -0.05 against live's (95% interval [-0.08, -0.02]) over "
              "outcomes from 120 and 300 entities (canary, control): worse than live "
              "by more than 0");
        // Allowed to lose up to 0.03: the interval holds losses of 0.02, within it.
        v = judge_canary(with(canary_against_control("roc_auc", true, -0.05, -0.08, -0.02)),
                         two_against_one(0.03));
        CHECK(v.what == canary_verdict::kind::promote);
        CHECK(v.reason.ends_with(": not shown worse than live by more than 0.03"));
        // An inconclusive difference is no evidence of a loss.
        v = judge_canary(with(canary_against_control("roc_auc", true, -0.01, -0.05, 0.03)),
                         two_against_one());
        CHECK(v.what == canary_verdict::kind::promote);
        v = judge_canary(with(canary_against_control("roc_auc", true, 0.04, 0.01, 0.07)),
                         two_against_one());
        CHECK(v.what == canary_verdict::kind::promote);
        CHECK(v.reason.starts_with("roc_auc +0.04 against live's"));
    }
    SECTION("lower is better: worse when even the interval's lower end is a loss past max_loss") {
        auto v = judge_canary(with(canary_against_control("rmse", false, 0.5, 0.2, 0.8)),
                              two_against_one());
        CHECK(v.what == canary_verdict::kind::fail);
        v = judge_canary(with(canary_against_control("rmse", false, 0.5, 0.2, 0.8)),
                         two_against_one(0.25));
        CHECK(v.what == canary_verdict::kind::promote);
        v = judge_canary(with(canary_against_control("log_loss", false, 0.3, -0.1, 0.8)),
                         two_against_one());
        CHECK(v.what == canary_verdict::kind::promote);
    }
    SECTION("another task or other classes than live's cannot be judged: not published") {
        live_comparison c = canary_against_control("log_loss", false, 0, 0, 0);
        c.verdict = "not_comparable";
        auto v = judge_canary(with(c), two_against_one());
        CHECK(v.what == canary_verdict::kind::fail);
        CHECK(v.reason ==
              "the canary's log_loss cannot be compared with live's (another task or "
              "other classes)");
    }
}

TEST_CASE("canary: an arm answered mostly by fallbacks fails at once", "[canary]") {
    live_report r = with(canary_against_control("roc_auc", true, 0.01, -0.02, 0.04, 5, 300));
    live_group own;  // the canary's own answers, and live's in its place
    own.arm = canary_arm;
    own.version = 2;
    own.predictions = 4;
    live_group fallen = own;
    fallen.version = 1;
    fallen.predictions = 16;
    fallen.fallbacks = 16;
    r.groups = {own, fallen};
    auto v = judge_canary(r, two_against_one(), 0.5, 20);
    CHECK(v.what == canary_verdict::kind::fail);
    CHECK(v.reason ==
          "16 of the canary arm's 20 answers were fallbacks (over its share of 0.5): "
          "version 2 fails or misses its deadline");
    // Below min_requests, or within the share, it waits for its entities.
    CHECK(judge_canary(r, two_against_one(), 0.5, 21).what == canary_verdict::kind::wait);
    CHECK(judge_canary(r, two_against_one(), 0.8, 20).what == canary_verdict::kind::wait);
    // A shadow's fallbacks are not the arm's.
    for (auto& g : r.groups) g.shadow = true;
    CHECK(judge_canary(r, two_against_one(), 0.5, 20).what == canary_verdict::kind::wait);
}

TEST_CASE("canary: its JSON round-trips, and its arms are control then canary", "[canary]") {
    canary_state s = two_against_one(0.01);
    auto back = parse_canary(canary_json(s));
    REQUIRE(back);
    CHECK(back->version == 2);
    CHECK(back->against == 1);
    CHECK(back->job == 7);
    CHECK(back->policy.share == 0.25);
    CHECK(back->policy.entities == 100);
    CHECK(back->policy.max_loss == 0.01);
    CHECK(back->deadline == 1'000'000);
    CHECK_FALSE(back->outcome);
    s.outcome = "promoted";
    CHECK(parse_canary(canary_json(s))->outcome == "promoted");
    CHECK_FALSE(parse_canary("null"));
    CHECK_FALSE(parse_canary("{\"version\": 2}"));
    CHECK_FALSE(
        parse_canary("{\"version\": \"2\", \"against\": 1, \"share\": 0.1, "
                     "\"entities\": 1, \"max_loss\": 0, \"deadline\": 1}"));
    CHECK_FALSE(parse_canary("not json"));

    const json arms = json::parse(canary_arms(s));
    REQUIRE(arms.size() == 2);
    CHECK(arms[0] ==
          json({{"name", "control"}, {"version", 1}, {"weight", 0.75}, {"shadow", false}}));
    CHECK(arms[1] ==
          json({{"name", "canary"}, {"version", 2}, {"weight", 0.25}, {"shadow", false}}));
}

namespace {

// A canary definition as the registry keeps it (canonical JSON), with
// `change` applied to it first.
std::string canary_definition(const std::function<void(json&)>& change = {}) {
    json j = {{"task", "binary"},
              {"features_from", "posts"},
              {"label", {{"stream", "outcomes"}, {"field", "clicked"}}},
              {"features", {{{"field", "length"}}}},
              {"promotion", {{"mode", "canary"}, {"canary", {{"share", 0.2}}}}}};
    if (change) change(j);
    auto p = parse_definition(j.dump());
    INFO(j.dump());
    REQUIRE(p.errors.empty());
    return canonical_definition_json(p.definition);
}

}  // namespace

TEST_CASE("canary: goes on under a revision that changes neither its version nor its share",
          "[canary]") {
    const std::string before = canary_definition();
    CHECK(canary_goes_on(before, before));
    // How the model is served, supervised and retrained, and how long and on
    // how many entities the canary is judged: it goes on.
    CHECK(canary_goes_on(before, canary_definition([](json& j) {
                             j["promotion"]["canary"]["entities"] = 500;
                             j["promotion"]["canary"]["max_seconds"] = 3600;
                             j["promotion"]["canary"]["max_loss"] = 0.02;
                             j["serving"] = {{"deadline_ms", 250}};
                             j["supervision"] = {{"max_error_rate", 0.1}};
                             j["retrain"] = {{"every_new_labels", 100}};
                         })));
    // What made or gated the version, its share, or another mode: it ends.
    CHECK_FALSE(canary_goes_on(before, canary_definition([](json& j) {
                                   j["features"].push_back({{"field", "hour"}});
                               })));
    CHECK_FALSE(canary_goes_on(
        before, canary_definition([](json& j) { j["promotion"]["canary"]["share"] = 0.3; })));
    CHECK_FALSE(canary_goes_on(
        before, canary_definition([](json& j) { j["promotion"]["min_improvement"] = 0.01; })));
    CHECK_FALSE(canary_goes_on(before, canary_definition([](json& j) {
                                   j["promotion"] = {{"mode", "auto"}};
                               })));
    CHECK_FALSE(canary_goes_on(before, canary_definition([](json& j) {
                                   j["decision"] = {{"rule", "fixed"}, {"threshold", 0.7}};
                               })));
    CHECK_FALSE(canary_goes_on(before, "not json"));
    CHECK_FALSE(canary_goes_on("[]", before));
}

TEST_CASE("trains_alike: only serving, supervision and retrain may differ", "[canary]") {
    const std::string before = canary_definition();
    CHECK(trains_alike(before, before));
    CHECK(trains_alike(before, canary_definition([](json& j) {
                           j["serving"] = {{"deadline_ms", 250}};
                           j["supervision"] = {{"max_error_rate", 0.1}};
                           j["retrain"] = {{"every_new_labels", 100}};
                       })));
    CHECK_FALSE(trains_alike(before, canary_definition([](json& j) {
                                 j["features"].push_back({{"field", "hour"}});
                             })));
    // Unlike a canary going on, any change of the promotion counts: it says
    // whether and how the job's version is published.
    CHECK_FALSE(trains_alike(
        before, canary_definition([](json& j) { j["promotion"]["canary"]["entities"] = 500; })));
    CHECK_FALSE(trains_alike(before, canary_definition([](json& j) {
                                 j["promotion"] = {{"mode", "manual"}};
                             })));
    CHECK_FALSE(trains_alike(before, "not json"));
    CHECK_FALSE(trains_alike("[]", "[]"));
}

TEST_CASE("canary: under a new revision it keeps its start and takes the new bounds", "[canary]") {
    canary_state s = two_against_one();
    s.policy.max_seconds = 100;
    s.deadline = 5'000'000 + 100'000'000;  // begun at 5 s
    canary_policy p = s.policy;
    p.share = 0.4;  // a share the policy would not take on; kept as it was
    p.entities = 300;
    p.max_loss = 0.05;
    p.max_seconds = 1000;
    const canary_state t = canary_under(s, 4, p);
    CHECK(t.revision == 4);
    CHECK(t.policy.entities == 300);
    CHECK(t.policy.max_loss == 0.05);
    CHECK(t.policy.max_seconds == 1000);
    CHECK(t.policy.share == 0.25);
    CHECK(t.deadline == 5'000'000 + 1'000'000'000);
    CHECK(t.version == s.version);
    CHECK(t.against == s.against);
    CHECK(t.live_move_mark == s.live_move_mark);
    const auto back = parse_canary(canary_json(t));
    REQUIRE(back);
    CHECK(back->revision == 4);
    // A canary kept before it had a revision reads as its version's (0).
    json old = json::parse(canary_json(s));
    old.erase("revision");
    CHECK(parse_canary(old.dump())->revision == 0);
}

TEST_CASE("live metrics: a window cut at exactly max_predictions says it was truncated",
          "[canary][live_metrics]") {
    // Three segments of two predictions each, at times 10-11, 20-21, 30-31:
    // the newest two fill max_predictions exactly, and the older segments
    // went unread without a word (a canary reading 50,000 predictions with
    // no outcome said nothing of the older ones that had theirs).
    testing::migrated_db db;
    connection& c = db.conn;
    for (int s = 1; s <= 3; ++s) {
        json entries = json::array();
        for (int i = 0; i < 2; ++i) {
            const std::int64_t t = s * 10 + i;
            entries.push_back(
                json::array({"p" + std::to_string(t), 1, "live", 0, "e" + std::to_string(t), t, 1.5,
                             nullptr, nullptr, 0, nullptr, 10, "h"}));
        }
        statement st(c,
                     "INSERT INTO prediction_segments (model, first_time, last_time, size, entries)"
                     " VALUES ('m', ?, ?, 2, ?)");
        st.bind(1, s * 10).bind(2, s * 10 + 1).bind(3, entries.dump()).run();
    }
    model_definition d;
    d.task = task_kind::regression;
    d.features_from = "f";
    d.label.stream = "l";
    d.label.field = "y";
    live_uncertainty_options options;
    const auto read = [&](std::int64_t max, micros since) {
        auto r = compute_live_report(c, "m", d, since, options, max);
        REQUIRE(r);
        std::int64_t predictions = 0;
        for (const auto& g : r->groups) predictions += g.predictions;
        return std::make_pair(predictions, r->truncated);
    };
    CHECK(read(2, 0) == std::make_pair(std::int64_t{2}, true));
    CHECK(read(3, 0) == std::make_pair(std::int64_t{3}, true));
    CHECK(read(6, 0) == std::make_pair(std::int64_t{6}, false));
    CHECK(read(100, 0) == std::make_pair(std::int64_t{6}, false));
    // Older segments outside the window are no truncation.
    CHECK(read(4, 20) == std::make_pair(std::int64_t{4}, false));
}
