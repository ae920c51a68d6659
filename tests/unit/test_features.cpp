// Feature specs and the fitted pipeline: every transform's output and names,
// imputation, dropped columns, and the serialization round trip.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "ml/dataset.h"
#include "ml/features.h"
#include "ml/hash.h"

using namespace kennel;
using namespace kennel::ml;
using Catch::Matchers::Contains;
using Catch::Matchers::EndsWith;
using Catch::Matchers::StartsWith;

namespace {

feature_spec spec(std::string field, transform_kind kind, transform_params params = {}) {
    return {std::move(field), kind, std::move(params)};
}

feature_pipeline fit_ok(const std::vector<feature_spec>& specs, const std::vector<raw_record>& rows,
                        std::vector<std::string>* warnings = nullptr) {
    auto p = feature_pipeline::fit(specs, rows, warnings);
    INFO((p ? std::string("ok") : p.error().to_string()));
    REQUIRE(p);
    return std::move(p).value();
}

double column(const feature_pipeline& p, const std::vector<double>& x, const std::string& name) {
    auto it = std::find(p.names().begin(), p.names().end(), name);
    INFO("column " << name);
    REQUIRE(it != p.names().end());
    return x[static_cast<std::size_t>(it - p.names().begin())];
}

bool has_column(const feature_pipeline& p, const std::string& name) {
    return std::find(p.names().begin(), p.names().end(), name) != p.names().end();
}

bool any_warning_contains(const std::vector<std::string>& warnings, const std::string& text) {
    return std::any_of(warnings.begin(), warnings.end(),
                       [&](const std::string& w) { return w.find(text) != std::string::npos; });
}

}  // namespace

TEST_CASE("numeric is standardised by the training mean and std", "[features]") {
    std::vector<raw_record> rows = {{{"length", 10.0}}, {{"length", 20.0}}, {{"length", 30.0}}};
    rows.push_back({});  // one missing value so that the indicator varies
    auto p = fit_ok({spec("length", transform_kind::numeric)}, rows);
    REQUIRE(p.names() == std::vector<std::string>{"numeric-length", "missing-length"});
    const double sd = std::sqrt(200.0 / 3.0);  // population std of 10, 20, 30
    auto x = p.transform({{"length", 30.0}});
    CHECK(x[0] == Approx(10.0 / sd));
    CHECK(x[1] == 0.0);
}

// Squares of 1e308 overflow: the scale became 1, the column stayed near
// 1e306, and a linear fit on it went to NaN ("the stored artifact predicts
// differently" on NaN == NaN).
TEST_CASE("numeric values near the double range are standardised too", "[features]") {
    std::vector<raw_record> rows = {{{"x", 1e308}}, {{"x", -2.0}},  {{"x", 0.0}},
                                    {{"x", 2.0}},   {{"x", 1e308}}, {}};
    auto p = fit_ok({spec("x", transform_kind::numeric)}, rows);
    // The population std of {1e308, 0, 0, 0, 1e308} (small values vanish
    // beside them) is 1e308 * sqrt(6) / 5, the mean 4e307.
    const double sd = 1e308 * (std::sqrt(6.0) / 5);
    auto big = p.transform({{"x", 1e308}});
    auto small = p.transform({{"x", 2.0}});
    CHECK(column(p, big, "numeric-x") == Approx(6e307 / sd));
    CHECK(column(p, small, "numeric-x") == Approx(-4e307 / sd));
    for (const auto& row : rows) {
        for (double v : p.transform(row)) CHECK(std::isfinite(v));
    }
}

// Differences below 1e-154 square to 0: the column was taken as constant
// (scale 1, values left near 1e-170) and nothing was learned from it.
TEST_CASE("numeric values with a tiny spread are standardised too", "[features]") {
    std::vector<raw_record> rows = {{{"x", 1e-170}}, {{"x", 2e-170}}, {{"x", 3e-170}}};
    auto p = fit_ok({spec("x", transform_kind::numeric)}, rows);
    // Mean 2e-170, population std sqrt(2/3) * 1e-170.
    CHECK(column(p, p.transform({{"x", 3e-170}}), "numeric-x") == Approx(std::sqrt(1.5)));
    CHECK(column(p, p.transform({{"x", 1e-170}}), "numeric-x") == Approx(-std::sqrt(1.5)));
    CHECK(column(p, p.transform({{"x", 2e-170}}), "numeric-x") == Approx(0.0).margin(1e-12));
}

TEST_CASE("missing numeric becomes the training mean and sets the indicator", "[features]") {
    std::vector<raw_record> rows = {{{"length", 10.0}}, {{"length", 30.0}}, {}};
    auto p = fit_ok({spec("length", transform_kind::numeric)}, rows);
    for (const raw_record& r : {raw_record{}, raw_record{{"length", raw_value{}}},
                                raw_record{{"length", std::string("long")}}}) {
        auto x = p.transform(r);
        CHECK(column(p, x, "numeric-length") == 0.0);  // the mean, standardised
        CHECK(column(p, x, "missing-length") == 1.0);
    }
    // An interval counts as its midpoint for numeric transforms.
    auto x = p.transform({{"length", interval{25, 35}}});
    CHECK(column(p, x, "numeric-length") == Approx(1.0));
    CHECK(column(p, x, "missing-length") == 0.0);
}

TEST_CASE("log takes log1p of max(0,x) and standardises", "[features]") {
    std::vector<raw_record> rows = {{{"n", 0.0}}, {{"n", std::exp(2.0) - 1}}};
    auto p = fit_ok({spec("n", transform_kind::log)}, rows);
    REQUIRE(p.names() == std::vector<std::string>{"log-n"});
    // log1p values 0 and 2: mean 1, std 1.
    CHECK(p.transform({{"n", 0.0}})[0] == Approx(-1.0));
    CHECK(p.transform({{"n", -5.0}})[0] == Approx(-1.0));  // negatives clamp to 0
    CHECK(p.transform({{"n", std::exp(2.0) - 1}})[0] == Approx(1.0));
    CHECK(p.transform({})[0] == 0.0);
}

TEST_CASE("binarize outputs 1 only above the threshold", "[features]") {
    transform_params tp;
    tp.threshold = 5;
    std::vector<raw_record> rows = {{{"h", 1.0}}, {{"h", 9.0}}};
    auto p = fit_ok({spec("h", transform_kind::binarize, tp)}, rows);
    REQUIRE(p.names() == std::vector<std::string>{"binarized-h"});
    CHECK(p.transform({{"h", 5.0}})[0] == 0.0);
    CHECK(p.transform({{"h", 5.5}})[0] == 1.0);
    CHECK(p.transform({})[0] == 0.0);
}

TEST_CASE("bucketize one-hot encodes the bucket between edges", "[features]") {
    transform_params tp;
    tp.edges = {10, 20};
    std::vector<raw_record> rows = {{{"length", 5.0}}, {{"length", 15.0}}, {{"length", 25.0}}};
    auto p = fit_ok({spec("length", transform_kind::bucketize, tp)}, rows);
    REQUIRE(p.names() == std::vector<std::string>{"bucketized-length=(-inf,10)",
                                                  "bucketized-length=[10,20)",
                                                  "bucketized-length=[20,inf)"});
    CHECK(p.transform({{"length", 9.99}}) == std::vector<double>{1, 0, 0});
    CHECK(p.transform({{"length", 10.0}}) == std::vector<double>{0, 1, 0});
    CHECK(p.transform({{"length", 20.0}}) == std::vector<double>{0, 0, 1});
    CHECK(p.transform({}) == std::vector<double>{0, 0, 0});
}

TEST_CASE("category keeps the top-N values and maps unseen ones to other", "[features]") {
    transform_params tp;
    tp.top_n = 2;
    std::vector<raw_record> rows;
    for (int i = 0; i < 5; ++i) rows.push_back({{"breed", std::string("corgi")}});
    for (int i = 0; i < 3; ++i) rows.push_back({{"breed", std::string("pug")}});
    rows.push_back({{"breed", std::string("husky")}});  // below top 2: other
    rows.push_back({});                                 // missing
    auto p = fit_ok({spec("breed", transform_kind::category, tp)}, rows);
    REQUIRE(p.names() == std::vector<std::string>{"category-breed=corgi", "category-breed=pug",
                                                  "category-breed=other",
                                                  "category-breed=missing"});
    CHECK(p.transform({{"breed", std::string("pug")}}) == std::vector<double>{0, 1, 0, 0});
    CHECK(p.transform({{"breed", std::string("beagle")}}) == std::vector<double>{0, 0, 1, 0});
    CHECK(p.transform({{"breed", std::string("husky")}}) == std::vector<double>{0, 0, 1, 0});
    CHECK(p.transform({}) == std::vector<double>{0, 0, 0, 1});
}

TEST_CASE("unseen_categories names the category fields whose value training never saw",
          "[features]") {
    transform_params tp;
    tp.top_n = 2;
    std::vector<raw_record> rows;
    for (int i = 0; i < 5; ++i)
        rows.push_back({{"breed", std::string("corgi")}, {"size", 1.0}, {"hour", 9.0}});
    for (int i = 0; i < 3; ++i)
        rows.push_back({{"breed", std::string("pug")}, {"size", 2.0}, {"hour", 9.0}});
    rows.push_back({{"breed", std::string("husky")}, {"size", 3.0}, {"hour", 9.0}});
    // "hour" is always 9: its one column never varies and is dropped, so no
    // prediction reads the field and none of its values is news.
    auto p = fit_ok({spec("breed", transform_kind::category, tp),
                     spec("size", transform_kind::numeric), spec("hour", transform_kind::category)},
                    rows);
    REQUIRE_FALSE(has_column(p, "category-hour=9"));
    using names = std::vector<std::string>;
    CHECK(p.unseen_categories({{"breed", std::string("pug")}, {"hour", 14.0}}).empty());
    CHECK(p.unseen_categories({}).empty());  // missing is not unseen: imputed_fields says it
    CHECK(p.unseen_categories({{"breed", std::string("beagle")}}) == names{"breed"});
    // Below the top 2 in training is unseen too: it scores as other.
    CHECK(p.unseen_categories({{"breed", std::string("husky")}, {"size", 9.0}}) == names{"breed"});
    CHECK(p.unseen_categories({{"breed", true}}) == names{"breed"});
}

TEST_CASE("category without a missing slot counts missing as other", "[features]") {
    transform_params tp;
    tp.top_n = 1;
    tp.missing_slot = false;
    std::vector<raw_record> rows = {{{"b", std::string("x")}}, {{"b", std::string("y")}}, {}};
    auto p = fit_ok({spec("b", transform_kind::category, tp)}, rows);
    REQUIRE(p.names() == std::vector<std::string>{"category-b=x", "category-b=other"});
    CHECK(p.transform({}) == std::vector<double>{0, 1});
}

TEST_CASE("category numbers and booleans become category values", "[features]") {
    std::vector<raw_record> rows = {{{"hour", 14.0}}, {{"hour", 9.0}}, {{"hour", true}}};
    auto p = fit_ok({spec("hour", transform_kind::category)}, rows);
    CHECK(has_column(p, "category-hour=14"));
    CHECK(has_column(p, "category-hour=9"));
    CHECK(has_column(p, "category-hour=true"));
    CHECK(column(p, p.transform({{"hour", 14.0}}), "category-hour=14") == 1.0);
}

TEST_CASE("text hashes lowercase tokens into buckets with FNV-1a", "[features]") {
    transform_params tp;
    tp.buckets = 8;
    std::vector<raw_record> rows = {{{"caption", std::string("Happy dog")}},
                                    {{"caption", std::string("sad cat")}},
                                    {{"caption", std::string("")}}};
    std::vector<std::string> warnings;
    auto p = fit_ok({spec("caption", transform_kind::text, tp)}, rows, &warnings);
    const auto happy = fnv1a64("happy") % 8, dog = fnv1a64("dog") % 8;
    auto x = p.transform({{"caption", std::string("HAPPY, happy... dog!")}});
    double happy_count = column(p, x, "text-caption#" + std::to_string(happy));
    if (happy == dog) {
        CHECK(happy_count == 3.0);
    } else {
        CHECK(happy_count == 2.0);
        CHECK(column(p, x, "text-caption#" + std::to_string(dog)) == 1.0);
    }
    // Buckets that no training token reached are dropped, in one warning.
    CHECK(p.size() < 8);
    CHECK(any_warning_contains(warnings, "of text(caption): constant"));
}

TEST_CASE("fnv1a64 matches the published test vectors", "[features]") {
    CHECK(fnv1a64("") == 0xcbf29ce484222325ULL);
    CHECK(fnv1a64("a") == 0xaf63dc4c8601ec8cULL);
    CHECK(fnv1a64("foobar") == 0x85944171f73967e8ULL);
}

TEST_CASE("boolean accepts true/false and 0/1, missing is the training share", "[features]") {
    std::vector<raw_record> rows = {
        {{"verified", true}}, {{"verified", false}}, {{"verified", 1.0}}, {{"verified", 0.0}}};
    auto p = fit_ok({spec("verified", transform_kind::boolean)}, rows);
    REQUIRE(p.names() == std::vector<std::string>{"boolean-verified"});
    CHECK(p.transform({{"verified", true}})[0] == 1.0);
    CHECK(p.transform({{"verified", 0.0}})[0] == 0.0);
    CHECK(p.transform({})[0] == 0.5);
    CHECK(p.transform({{"verified", 7.0}})[0] == 0.5);  // not 0/1: missing
}

TEST_CASE("interval gives its midpoint and optionally its width", "[features]") {
    transform_params tp;
    tp.width = true;
    std::vector<raw_record> rows = {{{"likes", interval{27, 33}}}, {{"likes", 10.0}}};
    auto p = fit_ok({spec("likes", transform_kind::interval, tp)}, rows);
    REQUIRE(p.names() == std::vector<std::string>{"interval-likes-mid", "interval-likes-width"});
    // Midpoints 30 and 10 (a number is a zero-width interval): mean 20, std 10.
    // Widths 6 and 0: mean 3, std 3.
    auto x = p.transform({{"likes", interval{27, 33}}});
    CHECK(x[0] == Approx(1.0));
    CHECK(x[1] == Approx(1.0));
    x = p.transform({{"likes", 10.0}});
    CHECK(x[0] == Approx(-1.0));
    CHECK(x[1] == Approx(-1.0));
    CHECK(p.transform({}) == std::vector<double>{0, 0});
}

// upper - lower overflowed to inf: the width column's mean became NaN, every
// row NaN, and training dropped the column as "constant (inf)".
TEST_CASE("an interval as wide as the double range keeps its width column", "[features]") {
    transform_params tp;
    tp.width = true;
    std::vector<raw_record> rows = {
        {{"iv", interval{-1e308, 1e308}}}, {{"iv", interval{0, 2}}}, {{"iv", interval{1, 1}}}};
    std::vector<std::string> warnings;
    auto p = fit_ok({spec("iv", transform_kind::interval, tp)}, rows, &warnings);
    REQUIRE(p.names() == std::vector<std::string>{"interval-iv-mid", "interval-iv-width"});
    CHECK(warnings.empty());
    // Beside a width of 2e308, widths 2 and 0 round to the same value, as
    // small numbers do beside 1e308 in a numeric column.
    const auto widest = p.transform({{"iv", interval{-1e308, 1e308}}});
    const auto narrow = p.transform({{"iv", interval{1, 1}}});
    CHECK(widest[1] > narrow[1]);
    for (const auto& row : rows) {
        for (double v : p.transform(row)) CHECK(std::isfinite(v));
    }
}

TEST_CASE("constant and always-missing columns are dropped with warnings", "[features]") {
    std::vector<raw_record> rows = {{{"length", 10.0}, {"same", 5.0}},
                                    {{"length", 20.0}, {"same", 5.0}}};
    std::vector<std::string> warnings;
    auto p = fit_ok({spec("length", transform_kind::numeric), spec("same", transform_kind::numeric),
                     spec("ghost", transform_kind::numeric)},
                    rows, &warnings);
    CHECK(p.names() == std::vector<std::string>{"numeric-length"});
    CHECK(any_warning_contains(warnings, "dropped column 'missing-length': constant (0)"));
    // The field's value, not the column's after scaling (0 for any constant).
    CHECK(any_warning_contains(warnings, "dropped column 'numeric-same': constant (5)"));
    CHECK(any_warning_contains(warnings, "dropped feature numeric(ghost)"));
    CHECK(any_warning_contains(warnings, "always missing"));
    CHECK(p.transform({{"length", 15.0}, {"ghost", 3.0}}).size() == 1);
    // What a prediction reads: only the feature with a column left.
    REQUIRE(p.used_specs().size() == 1);
    CHECK(p.used_specs()[0].field == "length");
    CHECK(p.specs().size() == 3);
}

TEST_CASE("a constant scaled column is said by its value before scaling", "[features]") {
    std::vector<raw_record> rows = {{{"x", 1.0}, {"l", -3.0}, {"iv", interval{2, 4}}},
                                    {{"x", 2.0}, {"l", -5.0}, {"iv", interval{2, 4}}}};
    transform_params wide;
    wide.width = true;
    feature_spec iv = spec("iv", transform_kind::interval, wide);
    std::vector<std::string> warnings;
    auto p = fit_ok({spec("x", transform_kind::numeric), spec("l", transform_kind::log), iv}, rows,
                    &warnings);
    CHECK(p.names() == std::vector<std::string>{"numeric-x"});
    // log(1 + max(0, x)) of both: their raw values differ.
    CHECK(any_warning_contains(warnings, "constant (0 after the log transform)"));
    CHECK(any_warning_contains(warnings, "constant (3) in the training data"));
    CHECK(any_warning_contains(warnings, "constant (2) in the training data"));
}

TEST_CASE("fit fails when nothing is left after dropping", "[features]") {
    std::vector<raw_record> rows = {{{"same", 5.0}}, {{"same", 5.0}}};
    auto p = feature_pipeline::fit({spec("same", transform_kind::numeric)}, rows);
    REQUIRE_FALSE(p);
    CHECK(p.error().kind() == error_kind::failed_precondition);
    CHECK_THAT(p.error().message(), Contains("no usable feature columns"));
}

TEST_CASE("fit fails when a field never has the right type", "[features]") {
    std::vector<raw_record> rows = {{{"length", std::string("long")}},
                                    {{"length", std::string("x")}}};
    auto p = feature_pipeline::fit({spec("length", transform_kind::numeric)}, rows);
    REQUIRE_FALSE(p);
    CHECK(p.error().kind() == error_kind::invalid_argument);
    CHECK_THAT(p.error().message(), Contains("never a finite number"));
    CHECK_THAT(p.error().message(), Contains("found string"));
}

TEST_CASE("a partly wrong-typed field is fitted with a warning", "[features]") {
    std::vector<raw_record> rows = {
        {{"length", 10.0}}, {{"length", 20.0}}, {{"length", std::string("x")}}};
    std::vector<std::string> warnings;
    auto p = fit_ok({spec("length", transform_kind::numeric)}, rows, &warnings);
    CHECK(any_warning_contains(warnings, "1 of 3 values are not a finite number"));
    CHECK(column(p, p.transform({{"length", std::string("y")}}), "missing-length") == 1.0);
}

TEST_CASE("bad specs are refused before looking at data", "[features]") {
    std::vector<raw_record> rows = {{{"a", 1.0}}, {{"a", 2.0}}};
    transform_params unsorted;
    unsorted.edges = {3, 1};
    auto p = feature_pipeline::fit({spec("a", transform_kind::bucketize, unsorted)}, rows);
    REQUIRE_FALSE(p);
    CHECK(p.error().field() == "features[0].params.edges");
    auto dup = feature_pipeline::fit(
        {spec("a", transform_kind::numeric), spec("a", transform_kind::numeric)}, rows);
    REQUIRE_FALSE(dup);
    CHECK_THAT(dup.error().message(), Contains("duplicate"));
    CHECK_FALSE(feature_pipeline::fit({}, rows));
    CHECK_FALSE(feature_pipeline::fit({spec("a", transform_kind::numeric)}, {}));
    // A key with a double quote is stored in facts but no SQLite JSON path
    // can name it: refused by name, not reported as absent from the stream.
    auto quoted = feature_pipeline::fit({spec("a\"b", transform_kind::numeric)}, rows);
    REQUIRE_FALSE(quoted);
    CHECK(quoted.error().field() == "features[0].field");
    CHECK_THAT(quoted.error().message(), Contains("double quote"));
    // A backslash or a control character is stored escaped ("a\\b"): the
    // path "a\b" matched nothing, and "a\\b" a key that does not exist.
    for (const char* name : {"a\\b", "a\tb", "a\x01", "a\x7f"}) {
        auto odd = feature_pipeline::fit({spec(name, transform_kind::numeric)}, rows);
        REQUIRE_FALSE(odd);
        CHECK(odd.error().field() == "features[0].field");
        CHECK_THAT(odd.error().message(), Contains("backslash or a control character"));
    }
}

TEST_CASE("transform names parse and print", "[features]") {
    CHECK(*parse_transform_kind("bucketize") == transform_kind::bucketize);
    CHECK_FALSE(parse_transform_kind("nope"));
    CHECK(std::string(transform_kind_name(transform_kind::interval)) == "interval");
}

TEST_CASE("serialization round trip gives identical transforms", "[features]") {
    transform_params cat;
    cat.top_n = 2;
    transform_params buckets;
    buckets.edges = {0.5, 1.5};
    transform_params text;
    text.buckets = 16;
    transform_params iv;
    iv.width = true;
    std::vector<feature_spec> specs = {spec("length", transform_kind::numeric),
                                       spec("length", transform_kind::log),
                                       spec("hashtags", transform_kind::bucketize, buckets),
                                       spec("breed", transform_kind::category, cat),
                                       spec("caption", transform_kind::text, text),
                                       spec("verified", transform_kind::boolean),
                                       spec("likes", transform_kind::interval, iv)};
    const std::vector<std::string> breeds = {"corgi", "pug", "husky", "beagle", "other"};
    const std::vector<std::string> words = {"dog", "walk", "park", "sunny", "nap", "ball"};
    std::vector<raw_record> rows;
    for (int i = 0; i < 60; ++i) {
        raw_record r;
        if (i % 7) r["length"] = 10.0 + (i * 37 % 100);
        r["hashtags"] = static_cast<double>(i % 3);
        r["breed"] = breeds[static_cast<std::size_t>(i * i % 5)];
        r["caption"] = words[static_cast<std::size_t>(i % 6)] + " " +
                       words[static_cast<std::size_t>(i * 5 % 6)];
        r["verified"] = i % 3 == 0;
        r["likes"] = interval{static_cast<double>(i), static_cast<double>(i + i % 4)};
        rows.push_back(std::move(r));
    }
    auto p = fit_ok(specs, rows);
    const std::string bytes = p.to_bytes();
    auto q = feature_pipeline::from_bytes(bytes);
    REQUIRE(q);
    CHECK(q->names() == p.names());
    CHECK(q->to_bytes() == bytes);
    rows.push_back({});
    rows.push_back({{"breed", std::string("dalmatian")}, {"caption", std::string("Unseen words")}});
    for (const auto& r : rows) CHECK(q->transform(r) == p.transform(r));
    // A literal "other" value (frequent enough for the vocabulary) cannot
    // collide with the other slot.
    CHECK(has_column(p, "category-breed=\"other\""));
    CHECK(has_column(p, "category-breed=other"));

    SECTION("damaged bytes are refused") {
        CHECK_FALSE(feature_pipeline::from_bytes(bytes.substr(0, bytes.size() / 2)));
        CHECK_FALSE(feature_pipeline::from_bytes("not a pipeline"));
        CHECK_FALSE(feature_pipeline::from_bytes(bytes + "x"));
    }
}

TEST_CASE("holdout is a stable function of the entity", "[dataset]") {
    std::size_t held = 0;
    for (int i = 0; i < 10000; ++i) {
        const std::string e = "entity-" + std::to_string(i);
        const bool h = holdout_of(e, 0.2);
        CHECK(h == holdout_of(e, 0.2));
        CHECK(h == (unit_hash(e) < 0.2));
        if (h) ++held;
        CHECK((holdout_of(e, 0.1) ? h : true));  // a smaller share is a subset
    }
    CHECK(held > 1800);
    CHECK(held < 2200);
    CHECK_FALSE(holdout_of("x", 0.0));
    CHECK(holdout_of("x", 1.0));
    CHECK(holdout_rule(0.2) == "fmix64(fnv1a64(entity)) / 2^64 < 0.2");
}

TEST_CASE("a binary model's positive class comes second when the definition names it",
          "[dataset]") {
    // "fraud" beside "ok" was class 0: the metrics and the decision were
    // the common class's.
    const std::vector<raw_value> labels = {std::string("ok"), std::string("fraud"),
                                           std::string("ok")};
    auto sorted = encode_labels(task_kind::binary, labels);
    REQUIRE(sorted);
    CHECK(sorted->classes == std::vector<std::string>{"fraud", "ok"});
    auto named = encode_labels(task_kind::binary, labels, 50, {}, false, std::string("fraud"));
    REQUIRE(named);
    CHECK(named->classes == std::vector<std::string>{"ok", "fraud"});
    CHECK(named->y == std::vector<double>{0, 1, 0});
    auto already = encode_labels(task_kind::binary, labels, 50, {}, false, std::string("ok"));
    REQUIRE(already);
    CHECK(already->classes == std::vector<std::string>{"fraud", "ok"});
    CHECK(already->y == sorted->y);
    auto missing = encode_labels(task_kind::binary, labels, 50, {}, false, std::string("spam"));
    REQUIRE_FALSE(missing);
    CHECK_THAT(
        missing.error().message(),
        Catch::Contains("the positive class \"spam\" (label.positive) is not among the labels"));
    auto bools =
        encode_labels(task_kind::binary, {true, false}, 50, {}, false, std::string("false"));
    REQUIRE(bools);
    CHECK(bools->classes == std::vector<std::string>{"true", "false"});
}

TEST_CASE("labels encode deterministically per task", "[dataset]") {
    auto b = encode_labels(task_kind::binary,
                           {std::string("yes"), std::string("no"), std::string("yes")});
    REQUIRE(b);
    CHECK(b->classes == std::vector<std::string>{"no", "yes"});
    CHECK(b->y == std::vector<double>{1, 0, 1});

    auto bools = encode_labels(task_kind::binary, {true, false});
    REQUIRE(bools);
    CHECK(bools->classes == std::vector<std::string>{"false", "true"});
    CHECK(bools->y == std::vector<double>{1, 0});

    auto ints = encode_labels(task_kind::multiclass, {10.0, 2.0, 3.0, 2.0});
    REQUIRE(ints);
    CHECK(ints->classes == std::vector<std::string>{"2", "3", "10"});
    CHECK(ints->y == std::vector<double>{2, 0, 1, 0});
    // Whole numbers in full: the label as sent, and as an outcome is named.
    auto big = encode_labels(task_kind::multiclass, {100000.0, 2e6, -0.0, 1.0});
    REQUIRE(big);
    CHECK(big->classes == std::vector<std::string>{"0", "1", "100000", "2000000"});

    auto reg = encode_labels(task_kind::regression, {1.5, interval{27, 33}});
    REQUIRE(reg);
    CHECK(reg->y == std::vector<double>{1.5, 30});
    CHECK(reg->classes.empty());
}

TEST_CASE("class names in a message are bounded, in number and in length", "[dataset]") {
    // A job's error once listed every class whole: 1,000 classes of 5 KB
    // made a message of 5 MB, in the job log and every GET /v1/jobs.
    CHECK(quoted_classes({"a", "b"}) == "\"a\", \"b\"");
    std::vector<std::string> many;
    for (int i = 0; i < 1000; ++i) many.push_back(std::to_string(i) + std::string(5000, 'x'));
    const std::string listed = quoted_classes(many);
    CHECK(listed.size() < 8 * 72 + 20);  // 8 names of 64 bytes, quotes, "...", the tail
    CHECK_THAT(listed, StartsWith("\"0xxx"));
    CHECK_THAT(listed, EndsWith("...\" and 992 more"));
    // A cut never splits a UTF-8 character: 63 one-byte ones, then "é".
    const std::string cut = quoted_classes({std::string(63, 'a') + "\u00e9\u00e9"});
    CHECK(cut == "\"" + std::string(63, 'a') + "...\"");
}

TEST_CASE("label errors say what is wrong", "[dataset]") {
    auto none = encode_labels(task_kind::binary, {raw_value{}, raw_value{}});
    REQUIRE_FALSE(none);
    CHECK_THAT(none.error().message(), Contains("no labelled rows"));

    auto one = encode_labels(task_kind::binary, {true, true});
    REQUIRE_FALSE(one);
    CHECK_THAT(one.error().message(), Contains("only one class"));
    // ... unless asked (the label prior describes labels; it trains nothing).
    auto one_ok = encode_labels(task_kind::binary, {true, true}, 50, {}, true);
    REQUIRE(one_ok);
    CHECK(one_ok->classes == std::vector<std::string>{"true"});
    CHECK(one_ok->y == std::vector<double>{0, 0});
    // The other rules still hold: a third binary class is refused.
    CHECK_FALSE(encode_labels(task_kind::binary, {0.0, 1.0, 2.0}, 50, {}, true));

    auto wrong = encode_labels(task_kind::regression, {1.0, std::string("high")});
    REQUIRE_FALSE(wrong);
    CHECK_THAT(wrong.error().message(), Contains("found string"));

    auto three =
        encode_labels(task_kind::binary, {std::string("a"), std::string("b"), std::string("c")});
    REQUIRE_FALSE(three);
    CHECK_THAT(three.error().message(), Contains("at most 2 classes"));

    std::vector<raw_value> many;
    for (int i = 0; i < 5; ++i) many.push_back(static_cast<double>(i));
    auto limited = encode_labels(task_kind::multiclass, many, 4);
    REQUIRE_FALSE(limited);
    CHECK_THAT(limited.error().message(), Contains("at most 4 classes"));

    auto binary_number = encode_labels(task_kind::binary, {0.0, 2.0});
    REQUIRE_FALSE(binary_number);
    CHECK_THAT(binary_number.error().message(), Contains("must be 0 or 1"));
    CHECK(binary_number.error().field() == "label");
}

TEST_CASE("spec_problems lists every problem, each at its field", "[features]") {
    transform_params unsorted;
    unsorted.edges = {3, 1};
    transform_params no_buckets;
    no_buckets.buckets = 0;
    const std::vector<feature_spec> specs = {
        spec("", transform_kind::numeric),
        spec("a", transform_kind::bucketize, unsorted),
        spec("b", transform_kind::text, no_buckets),
        spec("c", transform_kind::numeric),
        spec("c", transform_kind::numeric),
    };
    const auto problems = spec_problems(specs);
    std::vector<std::string> fields;
    for (const auto& p : problems) fields.push_back(p.field());
    CHECK(fields == std::vector<std::string>{"features[0].field", "features[1].params.edges",
                                             "features[2].params.buckets", "features[4]"});
    // validate_specs reports the first of them.
    CHECK(validate_specs(specs).field() == "features[0].field");
    CHECK(spec_problems({spec("ok", transform_kind::numeric)}).empty());
}

// raw_record keeps its fields sorted by name, each name once, whatever order
// they arrive in: the transforms and the document reader rely on both.
TEST_CASE("raw_record: sorted, one value per name, first value kept", "[features]") {
    raw_record r;
    CHECK(r.empty());
    CHECK(r.emplace("m", 1.0));
    CHECK(r.emplace("z", std::string("last")));
    CHECK(r.emplace("a", true));
    CHECK(r.emplace("q", raw_value{}));
    CHECK_FALSE(r.emplace("m", 2.0));  // present: unchanged, as std::map's emplace
    REQUIRE(r.size() == 4);
    std::vector<std::string> names;
    for (const auto& [name, value] : r) names.push_back(name);
    CHECK(names == std::vector<std::string>{"a", "m", "q", "z"});
    CHECK(std::get<double>(r.at("m")) == 1.0);
    CHECK(std::get<bool>(r.at(std::string_view("a"))));
    CHECK(r.count("q") == 1);
    CHECK(r.count("b") == 0);
    CHECK(r.find("zz") == r.end());
    CHECK(r.find("") == r.end());
    CHECK_THROWS_AS(r.at("nope"), std::out_of_range);

    r["m"] = 3.0;  // present: replaced
    r["b"] = 4.0;  // absent: inserted in order
    CHECK(std::get<double>(r.at("m")) == 3.0);
    CHECK(std::next(r.begin())->first == "b");

    // Of repeated names in a list, the first is kept (std::map did the same).
    raw_record l{{"y", 1.0}, {"x", 2.0}, {"y", 3.0}};
    CHECK(l.size() == 2);
    CHECK(std::get<double>(l.at("y")) == 1.0);
    CHECK(l == raw_record{{"x", 2.0}, {"y", 1.0}});
    CHECK_FALSE(l == raw_record{{"x", 2.0}, {"y", 3.0}});

    // Many names in reverse order: every one found, in order.
    raw_record big;
    for (int i = 999; i >= 0; --i) big.emplace("f" + std::to_string(1000 + i), double(i));
    REQUIRE(big.size() == 1000);
    CHECK(std::is_sorted(big.begin(), big.end(),
                         [](const auto& a, const auto& b) { return a.first < b.first; }));
    for (int i = 0; i < 1000; ++i)
        CHECK(std::get<double>(big.at("f" + std::to_string(1000 + i))) == i);
}

// 20 posts of 410 with a length of 1e308 (an app's bug) set the scale, and the
// other lengths all scaled to about -0.05: the feature was lost to the model,
// the job succeeded, and its log said nothing.
TEST_CASE("a few values far from the rest that set a feature's scale are said", "[features]") {
    std::vector<raw_record> rows;
    for (int i = 0; i < 390; ++i) rows.push_back({{"length", 80.0 + (i % 81)}});
    for (int i = 0; i < 20; ++i) rows.push_back({{"length", 1e308}});
    std::vector<std::string> warnings;
    fit_ok({spec("length", transform_kind::numeric)}, rows, &warnings);
    CHECK(any_warning_contains(warnings,
                               "feature numeric(length): 20 of 410 values lie far from the rest "
                               "(e.g. 1e+308; the middle half lies within [100, 141])"));
    // A log of them is still far from the rest (709 beside 4.4-5.1).
    warnings.clear();
    fit_ok({spec("length", transform_kind::log)}, rows, &warnings);
    CHECK(any_warning_contains(warnings,
                               "feature log(length): 20 of 410 values lie far from the rest"));
    CHECK(any_warning_contains(warnings, "read the field with bucketize"));
    // Without them, nothing is said.
    rows.resize(390);
    warnings.clear();
    fit_ok({spec("length", transform_kind::numeric)}, rows, &warnings);
    CHECK(!any_warning_contains(warnings, "far from the rest"));

    // A long tail is not that: incomes spread over four orders of magnitude.
    rows.clear();
    for (int i = 0; i < 400; ++i) rows.push_back({{"income", 20000.0 * std::pow(1.02, i % 200)}});
    warnings.clear();
    fit_ok({spec("income", transform_kind::numeric)}, rows, &warnings);
    CHECK(!any_warning_contains(warnings, "far from the rest"));
    // Nor a column of mostly one value (no middle half to measure by).
    rows.clear();
    for (int i = 0; i < 400; ++i) rows.push_back({{"flag", i < 390 ? 0.0 : 1e9}});
    warnings.clear();
    fit_ok({spec("flag", transform_kind::numeric)}, rows, &warnings);
    CHECK(!any_warning_contains(warnings, "far from the rest"));
}
