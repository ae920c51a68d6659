// What explaining one answer costs (ml/explain.h), beside a baseline measured
// in the same run: one prediction of the same record through the same
// pipeline and model. Run by bench/explain.
//
// Models like bench/predict's: numbers on different scales and a category,
// 2,000 training rows; 4 fields (explained exactly: 2^4 subsets against 100
// background rows) and 8 fields (sampled: 4,096 predictions at most). Each
// algorithm the auto search tries: linear, forest (100 trees), kernel. The
// timed records are 16 others, cycled; best of five rounds.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "ml/artifact.h"
#include "ml/dataset.h"
#include "ml/explain.h"

using namespace kennel;
using namespace kennel::ml;
using steady = std::chrono::steady_clock;

namespace {

std::vector<raw_record> make_rows(std::size_t n, std::size_t fields, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> g(0, 1);
    const char* cats[] = {"a", "b", "c", "d", "e", "f"};
    std::vector<raw_record> rows;
    for (std::size_t r = 0; r < n; ++r) {
        raw_record rec;
        for (std::size_t i = 0; i + 1 < fields; ++i) {
            rec.emplace("x" + std::to_string(i), g(rng) * (1 + 100 * (i % 3)) + 10 * i);
        }
        rec.emplace("cat", std::string(cats[rng() % 6]));
        rows.push_back(std::move(rec));
    }
    return rows;
}

std::shared_ptr<const model_artifact> fit(algorithm algo, const std::vector<raw_record>& rows,
                                          std::size_t fields) {
    std::vector<feature_spec> specs;
    for (std::size_t i = 0; i + 1 < fields; ++i)
        specs.push_back({"x" + std::to_string(i), transform_kind::numeric, {}});
    specs.push_back({"cat", transform_kind::category, {}});
    auto pipeline = feature_pipeline::fit(specs, rows);
    if (!pipeline) throw std::runtime_error(pipeline.error().to_string());
    std::vector<double> y;
    std::mt19937_64 rng(7);
    std::normal_distribution<double> g(0, 1);
    for (const auto& r : rows) {
        const double x0 = std::get<double>(r.at("x0")), x1 = std::get<double>(r.at("x1"));
        y.push_back(x0 + 0.02 * x1 * (std::get<std::string>(r.at("cat")) == "a" ? 2 : 1) + g(rng));
    }
    train_params params;
    params.num_trees = 100;
    auto fn = train(task_kind::regression, algo, params, pipeline->transform_all(rows), y, 0);
    if (!fn) throw std::runtime_error(fn.error().to_string());
    auto a = std::make_shared<model_artifact>();
    a->task = task_kind::regression;
    a->pipeline = std::move(*pipeline);
    a->algo = algo;
    a->params = params;
    a->function = *fn;
    return a;
}

template <class F>
double us_per_call(std::size_t calls, F f) {
    double best = 1e300;
    for (int round = 0; round < 5; ++round) {
        const auto t0 = steady::now();
        for (std::size_t i = 0; i < calls; ++i) f(i);
        best =
            std::min(best, std::chrono::duration<double, std::micro>(steady::now() - t0).count() /
                               static_cast<double>(calls));
    }
    return best;
}

}  // namespace

int main(int argc, char** argv) {
    const std::size_t calls = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 50;
    std::printf("%-8s %6s %8s %12s %14s %12s %8s\n", "model", "fields", "method", "predict us",
                "explain us", "predictions", "ratio");
    for (std::size_t fields : {4, 8}) {
        const auto rows = make_rows(2000, fields, 1);
        const auto probe = make_rows(16, fields, 2);
        for (algorithm algo : {algorithm::linear, algorithm::forest, algorithm::kernel}) {
            const auto artifact = fit(algo, rows, fields);
            auto e =
                explainer::build(artifact, sample_background(artifact->pipeline.specs(), rows));
            if (!e) throw std::runtime_error(e.error().to_string());
            volatile double sink = 0;
            const double predict_us = us_per_call(calls * 200, [&](std::size_t i) {
                const auto& r = probe[i % probe.size()];
                sink = sink + artifact->function->predict(artifact->pipeline.transform(r)).value;
            });
            explanation last;
            const double explain_us = us_per_call(calls, [&](std::size_t i) {
                explain_options o;
                o.max_seconds = 60;
                last = (*e)->explain(probe[i % probe.size()], std::nullopt, o);
                sink = sink + last.base_value;
            });
            std::printf("%-8s %6zu %8s %12.2f %14.1f %12zu %8.0f\n", algorithm_name(algo), fields,
                        last.exact ? "exact" : "sampled", predict_us, explain_us, last.evaluations,
                        explain_us / predict_us);
        }
    }
    std::printf(
        "ratio = explain us / predict us: the explanation's cost in predictions of "
        "the same record\n");
    return 0;
}
