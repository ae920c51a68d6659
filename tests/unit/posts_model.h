// Posts with a length (missing in one of 11), a breed, a caption, a
// verified flag and an interval of likes, and a model fitted on them with
// every transform kind the posts have: shared by the artifact and
// explanation tests.
#pragma once

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "ml/artifact.h"
#include "ml/dataset.h"

namespace kennel::testing {

inline std::vector<ml::raw_record> make_post_rows(int n, int offset = 0) {
    const char* breeds[] = {"corgi", "pug", "husky", "beagle"};
    const char* words[] = {"dog", "walk", "park", "sunny", "nap"};
    std::vector<ml::raw_record> rows;
    for (int j = 0; j < n; ++j) {
        const int i = j + offset;
        ml::raw_record r;
        if (i % 11) r["length"] = static_cast<double>((i * 37) % 200);
        r["breed"] = std::string(breeds[(i * 7) % 4]);
        r["caption"] = std::string(words[i % 5]) + " " + words[(i * 3) % 5];
        r["verified"] = i % 3 == 0;
        r["likes"] = ml::interval{static_cast<double>(i % 50), static_cast<double>(i % 50 + i % 7)};
        rows.push_back(std::move(r));
    }
    return rows;
}

// A label per row from a score: binary above `cut`, multiclass "low" below
// `low`, "mid" below `high`, else "high"; regression 10 times the score.
template <class Score>
std::vector<ml::raw_value> post_labels(ml::task_kind task, const std::vector<ml::raw_record>& rows,
                                       Score score_of, double cut, double low, double high) {
    std::vector<ml::raw_value> labels;
    for (const auto& r : rows) {
        const double score = score_of(r);
        if (task == ml::task_kind::binary) labels.emplace_back(score > cut);
        if (task == ml::task_kind::multiclass)
            labels.emplace_back(std::string(score < low ? "low" : score < high ? "mid" : "high"));
        if (task == ml::task_kind::regression) labels.emplace_back(10 * score);
    }
    return labels;
}

// A model of `algo` fitted on `rows` for `labels` (one per row), 30 trees
// for a forest.
inline ml::model_artifact fit_posts_model(ml::task_kind task, ml::algorithm algo,
                                          const std::vector<ml::raw_record>& rows,
                                          const std::vector<ml::raw_value>& labels) {
    using namespace kennel::ml;
    auto enc = encode_labels(task, labels);
    REQUIRE(enc);
    transform_params cat;
    cat.top_n = 3;
    transform_params text;
    text.buckets = 8;
    transform_params iv;
    iv.width = true;
    auto pipeline = feature_pipeline::fit({{"length", transform_kind::numeric, {}},
                                           {"breed", transform_kind::category, cat},
                                           {"caption", transform_kind::text, text},
                                           {"verified", transform_kind::boolean, {}},
                                           {"likes", transform_kind::interval, iv}},
                                          rows);
    REQUIRE(pipeline);
    train_params params;
    params.num_trees = 30;
    auto fn = train(task, algo, params, pipeline->transform_all(rows), enc->y, enc->classes.size());
    INFO((fn ? "ok" : fn.error().to_string()));
    REQUIRE(fn);
    model_artifact a;
    a.task = task;
    a.pipeline = std::move(pipeline).value();
    a.classes = enc->classes;
    a.algo = algo;
    a.params = params;
    a.function = *fn;
    return a;
}

}  // namespace kennel::testing
