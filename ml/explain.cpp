#include "ml/explain.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>

#include "ml/hash.h"
#include "ml/raw_json.h"

namespace kennel::ml {
namespace {

using json = nlohmann::json;

json value_json(const raw_value& v) {
    if (const auto* d = std::get_if<double>(&v)) return std::isfinite(*d) ? json(*d) : json();
    if (const auto* b = std::get_if<bool>(&v)) return *b;
    if (const auto* s = std::get_if<std::string>(&v)) return *s;
    if (const auto* i = std::get_if<interval>(&v))
        return {{"lower", i->lower}, {"upper", i->upper}};
    return nullptr;
}

// The k-th draw of a sample's stream: counter-based, so that a sample's
// order depends on the seed and its number alone.
std::uint64_t draw(std::uint64_t stream, std::uint64_t k) {
    return fmix64(stream + (k + 1) * 0x9e3779b97f4a7c15ULL);
}

// The output explained: the value, or the probability of one class (NaN
// for a class the function does not know).
double answer_of(const prediction& p, std::optional<std::size_t> class_index) {
    if (!class_index) return p.value;
    return *class_index < p.probabilities.size() ? p.probabilities[*class_index]
                                                 : std::numeric_limits<double>::quiet_NaN();
}

bool same_columns(const std::vector<double>& a, const std::vector<double>& b,
                  const std::vector<std::size_t>& columns) {
    for (auto c : columns) {
        // Bitwise equal values encode alike; NaN never comes out of a pipeline.
        if (a[c] != b[c]) return false;
    }
    return true;
}

void copy_columns(std::vector<double>& to, const std::vector<double>& from,
                  const std::vector<std::size_t>& columns) {
    for (auto c : columns) to[c] = from[c];
}

}  // namespace

std::vector<raw_record> sample_background(const std::vector<feature_spec>& specs,
                                          const std::vector<raw_record>& rows,
                                          std::size_t max_rows) {
    std::set<std::string, std::less<>> fields;
    for (const auto& s : specs) fields.insert(s.field);
    const std::size_t k = std::min(rows.size(), max_rows);
    std::vector<raw_record> out;
    out.reserve(k);
    for (std::size_t i = 0; i < k; ++i) {
        const raw_record& row = rows[i * rows.size() / k];
        raw_record kept;
        for (const auto& [name, value] : row) {
            if (fields.contains(name) && !std::holds_alternative<std::monostate>(value))
                kept.emplace(name, value);
        }
        out.push_back(std::move(kept));
    }
    return out;
}

std::string background_to_json(const std::vector<raw_record>& rows) {
    std::vector<std::string> texts;
    texts.reserve(rows.size());
    for (const auto& row : rows) {
        json o = json::object();
        for (const auto& [name, value] : row) {
            json v = value_json(value);
            if (!v.is_null()) o[name] = std::move(v);
        }
        texts.push_back(o.dump());
    }
    // Over the byte limit (long texts), as many rows as fit, still evenly
    // spaced over the rows given: the first that fit were the oldest third.
    for (std::size_t k = texts.size(); k > 0; --k) {
        std::size_t bytes = 2;
        for (std::size_t i = 0; i < k; ++i) bytes += texts[i * texts.size() / k].size() + 1;
        if (bytes > background_max_bytes) continue;
        std::string out = "[";
        for (std::size_t i = 0; i < k; ++i) {
            if (i) out += ',';
            out += texts[i * texts.size() / k];
        }
        return out + "]";
    }
    return "[]";
}

std::optional<std::vector<raw_record>> background_in_features(std::string_view features_json) {
    json f = json::parse(features_json, nullptr, false);
    if (!f.is_object()) return std::nullopt;
    auto it = f.find("background");
    if (it == f.end() || !it->is_array()) return std::nullopt;
    std::vector<raw_record> rows;
    rows.reserve(it->size());
    for (const auto& row : *it) {
        if (!row.is_object()) continue;
        auto r = raw_record_from_json(row.dump());
        if (r) rows.push_back(std::move(*r));
    }
    return rows;
}

result<std::shared_ptr<const explainer>> explainer::build(
    std::shared_ptr<const model_artifact> artifact, const std::vector<raw_record>& background,
    std::size_t max_cells) {
    if (!artifact || !artifact->function)
        return status(error_kind::invalid_argument, "no model to explain");
    if (background.empty())
        return status(error_kind::invalid_argument, "no background rows to explain against");
    std::shared_ptr<explainer> e(new explainer());
    const feature_pipeline& pipeline = artifact->pipeline;
    const std::vector<std::string> column_fields = pipeline.column_fields();
    for (std::size_t c = 0; c < column_fields.size(); ++c) {
        auto at = std::lower_bound(e->fields_.begin(), e->fields_.end(), column_fields[c]);
        const auto i = static_cast<std::size_t>(at - e->fields_.begin());
        if (at == e->fields_.end() || *at != column_fields[c]) {
            e->fields_.insert(at, column_fields[c]);
            e->columns_.emplace(e->columns_.begin() + static_cast<std::ptrdiff_t>(i));
        }
        e->columns_[i].push_back(c);
    }
    const std::size_t width = std::max<std::size_t>(1, column_fields.size());
    const std::size_t rows = std::clamp<std::size_t>(max_cells / width, 1, background.size());
    for (std::size_t i = 0; i < rows; ++i) {
        // Evenly spaced when a wide pipeline keeps fewer.
        e->background_.push_back(pipeline.transform(background[i * background.size() / rows]));
        e->background_answers_.push_back(artifact->function->predict(e->background_.back()));
    }
    e->artifact_ = std::move(artifact);
    return std::shared_ptr<const explainer>(std::move(e));
}

double explainer::output(const std::vector<double>& x,
                         std::optional<std::size_t> class_index) const {
    return answer_of(artifact_->function->predict(x), class_index);
}

explanation explainer::explain(const raw_record& instance, std::optional<std::size_t> class_index,
                               const explain_options& options) const {
    using clock = std::chrono::steady_clock;
    const auto started = clock::now();
    const auto out_of_time = [&] {
        return std::chrono::duration<double>(clock::now() - started).count() > options.max_seconds;
    };
    explanation out;
    const std::vector<double> x = artifact_->pipeline.transform(instance);
    out.value = output(x, class_index);
    out.evaluations = 1;
    const std::size_t f = fields_.size(), b = background_.size();
    // Means kept as running means: a sum of 100 rows' shares of an input
    // near the largest double overflowed to infinity.
    std::vector<double> mean(f, 0);
    std::vector<double> error(f, 0);
    double base = 0;

    // Exact: every subset of fields against every background row, when that
    // fits the budget. A Gray code walks the subsets one field change apart.
    const bool exact =
        f <= 16 && (std::size_t{1} << f) * b <= std::max<std::size_t>(options.max_evaluations, 1);
    if (exact) {
        const std::size_t subsets = std::size_t{1} << f;
        // weight[s]: |S|! (f - |S| - 1)! / f!, for a subset S of size s
        // without the field.
        std::vector<double> weight(f, 0);
        for (std::size_t s = 0; s < f; ++s) {
            weight[s] = std::exp(std::lgamma(static_cast<double>(s) + 1) +
                                 std::lgamma(static_cast<double>(f - s)) -
                                 std::lgamma(static_cast<double>(f) + 1));
        }
        std::vector<double> v(subsets);
        for (std::size_t r = 0; r < b; ++r) {
            if (r > 0 && out_of_time()) {
                out.complete = false;
                break;
            }
            std::vector<double> z = background_[r];
            v[0] = answer_of(background_answers_[r], class_index);
            for (std::size_t k = 1; k < subsets; ++k) {
                const std::size_t gray = k ^ (k >> 1), previous = (k - 1) ^ ((k - 1) >> 1);
                const auto field = static_cast<std::size_t>(std::countr_zero(gray ^ previous));
                const bool in = (gray >> field) & 1;
                const bool unchanged = same_columns(x, background_[r], columns_[field]);
                if (!unchanged) copy_columns(z, in ? x : background_[r], columns_[field]);
                if (unchanged) {
                    v[gray] = v[previous];
                } else if (gray == subsets - 1) {
                    v[gray] = out.value;
                } else {
                    v[gray] = output(z, class_index);
                    ++out.evaluations;
                }
            }
            const auto n = static_cast<double>(r + 1);
            for (std::size_t i = 0; i < f; ++i) {
                double phi = 0;
                for (std::size_t s = 0; s < subsets; ++s) {
                    if ((s >> i) & 1) continue;
                    phi += weight[static_cast<std::size_t>(std::popcount(s))] *
                           (v[s | (std::size_t{1} << i)] - v[s]);
                }
                mean[i] += (phi - mean[i]) / n;
            }
            base += (v[0] - base) / n;
            ++out.background_rows;
        }
        out.exact = true;
    } else {
        // Sampled: pairs of an order and its reverse (their errors partly
        // cancel), each against a background row. With room for at least as
        // many pairs as rows, they go round the rows (the first rows get one
        // more when the pairs do not divide evenly), and each share is the
        // mean over the rows of its mean over the row's pairs: every row
        // weighs the same, so the base is the rows' plain mean. With less,
        // evenly spaced rows get one pair each.
        const std::size_t steps = std::max<std::size_t>(1, f - 1);
        const std::size_t pairs = std::max<std::size_t>(2, options.max_evaluations / (2 * steps));
        const bool round = pairs >= b;
        const std::size_t rows = round ? b : pairs;
        const auto row_of = [&](std::size_t p) { return round ? p % b : p * b / pairs; };
        std::vector<std::size_t> order(f);
        std::vector<double> pair(f), z;
        // Per row used (by its index among `rows`): its pairs so far, and
        // each field's running mean and sum of squared deviations (Welford:
        // no sum of values that could overflow).
        std::vector<std::size_t> count(rows, 0);
        std::vector<std::vector<double>> row_mean(rows, std::vector<double>(f, 0)),
            row_ss(rows, std::vector<double>(f, 0));
        for (std::size_t p = 0; p < pairs; ++p) {
            if (p > 0 && out_of_time()) {
                out.complete = false;
                break;
            }
            const std::size_t r = row_of(p), slot = round ? r : p;
            const double start = answer_of(background_answers_[r], class_index);
            std::iota(order.begin(), order.end(), std::size_t{0});
            const std::uint64_t stream = fmix64(options.seed ^ fmix64(p + 1));
            for (std::size_t k = f; k > 1; --k) {
                const auto j = static_cast<std::size_t>(draw(stream, k) % k);
                std::swap(order[k - 1], order[j]);
            }
            std::fill(pair.begin(), pair.end(), 0.0);
            for (int direction = 0; direction < 2; ++direction) {
                z = background_[r];
                double previous = start;
                for (std::size_t k = 0; k < f; ++k) {
                    const std::size_t field = direction == 0 ? order[k] : order[f - 1 - k];
                    if (same_columns(x, background_[r], columns_[field])) continue;
                    copy_columns(z, x, columns_[field]);
                    double now;
                    if (k == f - 1) {
                        now = out.value;
                    } else {
                        now = output(z, class_index);
                        ++out.evaluations;
                    }
                    pair[field] += (now - previous) / 2;
                    previous = now;
                }
            }
            const auto n = static_cast<double>(++count[slot]);
            for (std::size_t i = 0; i < f; ++i) {
                const double d = pair[i] - row_mean[slot][i];
                row_mean[slot][i] += d / n;
                row_ss[slot][i] += d * (pair[i] - row_mean[slot][i]);
            }
            out.samples += 2;
        }
        // The rows with pairs (all of them unless cut short) weigh the same.
        std::size_t used = 0, repeats = 0;
        double inverse_counts = 0;
        for (std::size_t k = 0; k < rows; ++k) {
            if (!count[k]) continue;
            ++used;
            const double start = answer_of(background_answers_[row_of(k)], class_index);
            base += (start - base) / static_cast<double>(used);
            for (std::size_t i = 0; i < f; ++i)
                mean[i] += (row_mean[k][i] - mean[i]) / static_cast<double>(used);
            repeats += count[k] - 1;
            inverse_counts += 1.0 / static_cast<double>(count[k]);
        }
        out.background_rows = used;
        // The error of each share. With rows of two or more pairs, only the
        // orders vary between the pairs of one row: their spread, pooled
        // over those rows, gives the variance of each row's mean, and so
        // of the mean over rows (pooled over at least 30 repeats: over a
        // handful, it swings with them). Else the spread between rows'
        // means also holds the rows' own differences, which do not vary
        // between calls: an upper bound, on the safe side.
        constexpr std::size_t min_repeats = 30;
        for (std::size_t i = 0; i < f && used > 1; ++i) {
            double variance = 0;
            if (repeats >= min_repeats) {
                double ss = 0;
                for (std::size_t k = 0; k < rows; ++k) ss += row_ss[k][i];
                variance = ss / static_cast<double>(repeats) * inverse_counts /
                           (static_cast<double>(used) * static_cast<double>(used));
            } else {
                double ss = 0;
                for (std::size_t k = 0; k < rows; ++k) {
                    if (count[k]) ss += (row_mean[k][i] - mean[i]) * (row_mean[k][i] - mean[i]);
                }
                variance = ss / static_cast<double>(used - 1) / static_cast<double>(used);
            }
            error[i] = std::sqrt(variance);
        }
    }
    out.base_value = out.background_rows ? base : out.value;
    for (std::size_t i = 0; i < f; ++i)
        out.contributions.push_back({fields_[i], mean[i], error[i]});
    std::stable_sort(out.contributions.begin(), out.contributions.end(),
                     [](const field_contribution& a, const field_contribution& c) {
                         return std::abs(a.contribution) > std::abs(c.contribution);
                     });
    return out;
}

}  // namespace kennel::ml
