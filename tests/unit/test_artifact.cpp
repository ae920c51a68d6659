// The model artifact: a serialize/load round trip predicts identically, and
// damaged, foreign or newer blobs are refused with clear statuses.
#include <catch2/catch.hpp>

#include <cstring>
#include <stdexcept>

#include "ml/artifact.h"
#include "ml/dataset.h"
#include "posts_model.h"

using namespace kennel;
using namespace kennel::ml;
using Catch::Matchers::Contains;

namespace {

std::vector<raw_record> make_rows(int n, int offset = 0) {
    return testing::make_post_rows(n, offset);
}

// The label depends on length and breed so every algorithm has something
// to learn.
double score_of(const raw_record& r) {
    const double length = r.count("length") ? std::get<double>(r.at("length")) : 100.0;
    return length / 100 + (std::get<std::string>(r.at("breed")) == "corgi" ? 1.0 : 0.0);
}

model_artifact build(task_kind task, algorithm algo) {
    const auto rows = make_rows(240);
    return testing::fit_posts_model(task, algo, rows,
                                    testing::post_labels(task, rows, score_of, 1.2, 0.8, 1.6));
}

void put_u32_le(std::string& blob, std::size_t at, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) blob[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

}  // namespace

TEST_CASE("serialize then load predicts identically on a probe set", "[artifact]") {
    const auto task = GENERATE(task_kind::binary, task_kind::multiclass, task_kind::regression);
    const auto algo =
        GENERATE(algorithm::baseline, algorithm::linear, algorithm::kernel, algorithm::forest);
    const model_artifact a = build(task, algo);
    const std::string blob = serialize_artifact(a);
    REQUIRE(blob.substr(0, 12) == "KENNEL-MODEL");
    auto loaded = load_artifact(blob);
    INFO((loaded ? "ok" : loaded.error().to_string()));
    REQUIRE(loaded);
    // As serving loads it: predicts the same, and only a forest refuses to
    // be written again (it dropped Dlib's trees).
    auto served = load_artifact(blob, load_use::predict);
    REQUIRE(served);
    if (algo == algorithm::forest) {
        CHECK_THROWS_AS(serialize_artifact(*served), std::logic_error);
    } else {
        CHECK(serialize_artifact(*served) == blob);
    }
    CHECK(loaded->task == task);
    CHECK(loaded->algo == algo);
    CHECK(loaded->classes == a.classes);
    CHECK(loaded->pipeline.names() == a.pipeline.names());
    CHECK(loaded->params.num_trees == 30);
    // Serializing the loaded artifact gives the same bytes: nothing was lost.
    CHECK(serialize_artifact(*loaded) == blob);

    auto probe = make_rows(60, 1000);
    probe.push_back({});  // everything missing
    probe.push_back({{"breed", std::string("dalmatian")}, {"length", std::string("?")}});
    for (const auto& r : probe) {
        auto p = predict_raw(a, r);
        auto q = predict_raw(*loaded, r);
        auto s = predict_raw(*served, r);
        REQUIRE(p);
        REQUIRE(q);
        REQUIRE(s);
        CHECK(p->value == q->value);
        CHECK(p->label == q->label);
        CHECK(p->probabilities == q->probabilities);
        CHECK(s->value == q->value);
        CHECK(s->probabilities == q->probabilities);
        if (task != task_kind::regression) {
            CHECK(p->label == a.classes[static_cast<std::size_t>(p->value)]);
        }
    }
}

TEST_CASE("damaged artifacts are refused with clear statuses", "[artifact]") {
    const std::string blob = serialize_artifact(build(task_kind::binary, algorithm::forest));

    SECTION("a flipped payload byte fails the checksum") {
        for (std::size_t at : {std::size_t{30}, blob.size() / 2, blob.size() - 9}) {
            std::string bad = blob;
            bad[at] = static_cast<char>(bad[at] ^ 0x5a);
            auto r = load_artifact(bad);
            REQUIRE_FALSE(r);
            CHECK(r.error().kind() == error_kind::invalid_argument);
            CHECK_THAT(r.error().message(), Contains("checksum mismatch"));
        }
    }
    SECTION("truncated or extended blobs are refused") {
        auto shorter = load_artifact(blob.substr(0, blob.size() - 1));
        REQUIRE_FALSE(shorter);
        CHECK_THAT(shorter.error().message(), Contains("length mismatch"));
        auto longer = load_artifact(blob + "x");
        REQUIRE_FALSE(longer);
        CHECK_THAT(longer.error().message(), Contains("length mismatch"));
        auto tiny = load_artifact(blob.substr(0, 14));
        REQUIRE_FALSE(tiny);
        CHECK_THAT(tiny.error().message(), Contains("truncated"));
    }
    SECTION("a wrong tag is refused") {
        std::string bad = blob;
        std::memcpy(bad.data(), "KENNEL-MODEX", 12);
        auto r = load_artifact(bad);
        REQUIRE_FALSE(r);
        CHECK(r.error().kind() == error_kind::invalid_argument);
        CHECK(r.error().field() == "artifact");
        CHECK_THAT(r.error().message(), Contains("not a Kennel model"));
        CHECK_FALSE(load_artifact(""));
        CHECK_FALSE(load_artifact("hello"));
    }
    SECTION("a newer format version is refused") {
        std::string newer = blob;
        put_u32_le(newer, 12, artifact_format_version + 1);
        auto r = load_artifact(newer);
        REQUIRE_FALSE(r);
        CHECK(r.error().kind() == error_kind::failed_precondition);
        CHECK_THAT(r.error().message(), Contains("format version 2 is newer"));
        CHECK_THAT(r.error().message(), Contains("upgrade"));
    }
}

TEST_CASE("a mismatched algorithm tag is refused", "[artifact]") {
    model_artifact a = build(task_kind::regression, algorithm::linear);
    a.algo = algorithm::forest;  // lies about the function it carries
    auto r = load_artifact(serialize_artifact(a));
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().message(), Contains("algorithm tag 'forest' does not match"));
}

TEST_CASE("an artifact without a function serializes to nothing loadable", "[artifact]") {
    model_artifact a;
    CHECK(serialize_artifact(a).empty());
    CHECK_FALSE(load_artifact(serialize_artifact(a)));
}

TEST_CASE("a multiclass model with only two classes round-trips", "[artifact]") {
    const auto algo = GENERATE(algorithm::linear, algorithm::kernel, algorithm::forest);
    const auto rows = make_rows(120);
    std::vector<raw_value> labels;
    for (const auto& r : rows) {
        labels.push_back(std::string(std::get<std::string>(r.at("breed")) == "corgi" ? "a" : "b"));
    }
    auto enc = encode_labels(task_kind::multiclass, labels);
    REQUIRE(enc);
    REQUIRE(enc->classes.size() == 2);
    auto pipeline = feature_pipeline::fit({{"breed", transform_kind::category, {}}}, rows);
    REQUIRE(pipeline);
    auto fn = train(task_kind::multiclass, algo, {}, pipeline->transform_all(rows), enc->y, 2);
    REQUIRE(fn);
    model_artifact a;
    a.task = task_kind::multiclass;
    a.pipeline = std::move(pipeline).value();
    a.classes = enc->classes;
    a.algo = algo;
    a.function = *fn;
    auto loaded = load_artifact(serialize_artifact(a));
    INFO((loaded ? "ok" : loaded.error().to_string()));
    REQUIRE(loaded);
    auto p = predict_raw(*loaded, {{"breed", std::string("corgi")}});
    REQUIRE(p);
    CHECK(p->label == "a");
    CHECK(p->probabilities.size() == 2);
}
