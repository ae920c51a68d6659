#include "ml/features.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_map>

#include <dlib/serialize.h>

#include "ml/dlib_io.h"
#include "ml/hash.h"
#include "store/facts.h"

namespace kennel::ml {
namespace {

constexpr const char* pipeline_tag = "kennel-feature-pipeline";
constexpr std::uint32_t pipeline_format = 1;

bool valid_interval(const interval& i) {
    return std::isfinite(i.lower) && std::isfinite(i.upper) && i.lower <= i.upper;
}

std::optional<interval> as_interval(const raw_value& v) {
    if (auto i = std::get_if<interval>(&v); i && valid_interval(*i)) return *i;
    if (auto d = std::get_if<double>(&v); d && std::isfinite(*d)) return interval{*d, *d};
    return std::nullopt;
}

bool is_usable(transform_kind kind, const raw_value& v) {
    switch (kind) {
        case transform_kind::numeric:
        case transform_kind::log:
        case transform_kind::binarize:
        case transform_kind::bucketize:
            return as_number(v).has_value();
        case transform_kind::category:
            return as_category(v).has_value();
        case transform_kind::text:
            return std::holds_alternative<std::string>(v);
        case transform_kind::boolean:
            return as_boolean(v).has_value();
        case transform_kind::interval:
            return as_interval(v).has_value();
    }
    return false;
}

const char* expected_kind(transform_kind kind) {
    switch (kind) {
        case transform_kind::numeric:
        case transform_kind::log:
        case transform_kind::binarize:
        case transform_kind::bucketize:
            return "a finite number";
        case transform_kind::category:
            return "a string, boolean or number";
        case transform_kind::text:
            return "a string";
        case transform_kind::boolean:
            return "a boolean or 0/1";
        case transform_kind::interval:
            return "an interval or a number";
    }
    return "?";
}

double log_value(double x) {
    return std::log1p(std::max(0.0, x));
}

// ASCII rules spelled out rather than <cctype>, whose answers depend on the
// process locale.
bool is_token_byte(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}

template <class F>
void for_each_token(std::string_view text, F&& f) {
    std::string token;
    for (char ch : text) {
        auto c = static_cast<unsigned char>(ch);
        if (is_token_byte(c)) {
            token += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : ch;
        } else if (!token.empty()) {
            f(token);
            token.clear();
        }
    }
    if (!token.empty()) f(token);
}

// Mean and a scale that is safe to divide by (population std, like
// scikit-learn's StandardScaler; 1 when there is no spread, because such a
// column is constant and will be dropped anyway).
std::pair<double, double> mean_and_scale(const std::vector<double>& xs) {
    if (xs.empty()) return {0.0, 1.0};
    double mean = 0;
    for (double x : xs) mean += x;
    mean /= static_cast<double>(xs.size());
    double var = 0;
    for (double x : xs) var += (x - mean) * (x - mean);
    var /= static_cast<double>(xs.size());
    double sd = std::sqrt(var);
    const auto [lo, hi] = std::minmax_element(xs.begin(), xs.end());
    const bool spread = *lo < *hi;
    if (!std::isfinite(mean) || !std::isfinite(sd) || (spread && !(sd > 0))) {
        // Values near the double range (1e308) overflow the sums; a scale
        // of 1 then left the column at ~1e306 and the fit at NaN. Values
        // that differ by less than 1e-154 underflow the variance to 0, and
        // the column was taken as constant: nothing learned from it. The
        // same sums over x / max|x| do neither.
        double m = 0;
        for (double x : xs) m = std::max(m, std::fabs(x));
        double scaled_mean = 0;
        for (double x : xs) scaled_mean += x / m;
        scaled_mean /= static_cast<double>(xs.size());
        double scaled_var = 0;
        for (double x : xs) scaled_var += (x / m - scaled_mean) * (x / m - scaled_mean);
        scaled_var /= static_cast<double>(xs.size());
        mean = scaled_mean * m;
        sd = std::sqrt(scaled_var) * m;
    }
    if (!(sd > 0) || !std::isfinite(sd)) sd = 1;
    return {mean, sd};
}

using fitted_feature = feature_pipeline::fitted_feature;

// (x - mean) / scale, without overflowing where the answer is finite:
// x = 1.7e308 beside values of the other sign overflowed the difference
// (the job then failed as "row 1 is not finite", naming neither the field
// nor the row's entity).
double standardize(double x, double mean, double scale) {
    const double z = (x - mean) / scale;
    if (std::isfinite(z) || !std::isfinite(x)) return z;
    return x / scale - mean / scale;
}

std::size_t column_count(const feature_spec& s, const fitted_feature& f) {
    switch (s.transform) {
        case transform_kind::numeric:
            return 2;
        case transform_kind::log:
        case transform_kind::binarize:
        case transform_kind::boolean:
            return 1;
        case transform_kind::bucketize:
            return s.params.edges.size() + 1;
        case transform_kind::category:
            return f.vocabulary.size() + 1 + (s.params.missing_slot ? 1 : 0);
        case transform_kind::text:
            return s.params.buckets;
        case transform_kind::interval:
            return s.params.width ? 2 : 1;
    }
    return 0;
}

std::vector<std::string> column_names(const feature_spec& s, const fitted_feature& f) {
    std::vector<std::string> out;
    const std::string& field = s.field;
    switch (s.transform) {
        case transform_kind::numeric:
            out = {"numeric-" + field, "missing-" + field};
            break;
        case transform_kind::log:
            out = {"log-" + field};
            break;
        case transform_kind::binarize:
            out = {"binarized-" + field};
            break;
        case transform_kind::boolean:
            out = {"boolean-" + field};
            break;
        case transform_kind::bucketize: {
            const auto& e = s.params.edges;
            for (std::size_t i = 0; i <= e.size(); ++i) {
                std::string lo = i == 0 ? "(-inf" : "[" + format_number(e[i - 1]);
                std::string hi = i == e.size() ? "inf)" : format_number(e[i]) + ")";
                out.push_back("bucketized-" + field + "=" + lo + "," + hi);
            }
            break;
        }
        case transform_kind::category: {
            // A literal value "other" or "missing" is quoted so that it cannot
            // collide with the special slots.
            for (const auto& v : f.vocabulary) {
                bool special = v == "other" || v == "missing";
                out.push_back("category-" + field + "=" + (special ? "\"" + v + "\"" : v));
            }
            out.push_back("category-" + field + "=other");
            if (s.params.missing_slot) out.push_back("category-" + field + "=missing");
            break;
        }
        case transform_kind::text:
            for (std::size_t i = 0; i < s.params.buckets; ++i)
                out.push_back("text-" + field + "#" + std::to_string(i));
            break;
        case transform_kind::interval:
            out.push_back("interval-" + field + "-mid");
            if (s.params.width) out.push_back("interval-" + field + "-width");
            break;
    }
    return out;
}

// Writes column_count(s, f) values for one field's value (nullptr: absent).
void write_columns(const feature_spec& s, const fitted_feature& f, const raw_value* v,
                   double* out) {
    static const raw_value missing;
    const raw_value& value = v ? *v : missing;
    switch (s.transform) {
        case transform_kind::numeric: {
            auto x = as_number(value);
            out[0] = x ? standardize(*x, f.mean, f.scale) : 0.0;
            out[1] = x ? 0.0 : 1.0;
            return;
        }
        case transform_kind::log: {
            auto x = as_number(value);
            out[0] = x ? standardize(log_value(*x), f.mean, f.scale) : 0.0;
            return;
        }
        case transform_kind::binarize: {
            auto x = as_number(value);
            out[0] = (x && *x > s.params.threshold) ? 1.0 : 0.0;
            return;
        }
        case transform_kind::bucketize: {
            const auto& e = s.params.edges;
            std::fill(out, out + e.size() + 1, 0.0);
            if (auto x = as_number(value)) {
                // The number of edges <= x is the bucket index.
                out[std::upper_bound(e.begin(), e.end(), *x) - e.begin()] = 1.0;
            }
            return;
        }
        case transform_kind::category: {
            const std::size_t n = f.vocabulary.size();
            std::fill(out, out + column_count(s, f), 0.0);
            if (auto c = as_category(value)) {
                auto it = f.index.find(*c);
                out[it == f.index.end() ? n : it->second] = 1.0;
            } else {
                out[s.params.missing_slot ? n + 1 : n] = 1.0;
            }
            return;
        }
        case transform_kind::text: {
            const std::size_t n = s.params.buckets;
            std::fill(out, out + n, 0.0);
            if (auto t = std::get_if<std::string>(&value)) {
                for_each_token(*t, [&](const std::string& token) { out[fnv1a64(token) % n] += 1; });
            }
            return;
        }
        case transform_kind::boolean: {
            auto b = as_boolean(value);
            out[0] = b ? (*b ? 1.0 : 0.0) : f.fill;
            return;
        }
        case transform_kind::interval: {
            auto i = as_interval(value);
            out[0] = i ? standardize(i->midpoint(), f.mean, f.scale) : 0.0;
            if (s.params.width)
                out[1] = i ? standardize(i->width(), f.width_mean, f.width_scale) : 0.0;
            return;
        }
    }
}

// What a scaled column holds before its scaling, from one row's value: a
// constant one is 0 after it whatever the data held ("constant (0)" for a
// field of 5s). nullopt for a column not scaled, or a value it reads none of.
std::optional<double> unscaled_value(const feature_spec& s, const raw_value* v,
                                     std::size_t column) {
    if (!v) return std::nullopt;
    switch (s.transform) {
        case transform_kind::numeric:
            return column == 0 ? as_number(*v) : std::nullopt;
        case transform_kind::log: {
            auto x = as_number(*v);
            return x ? std::optional<double>(log_value(*x)) : std::nullopt;
        }
        case transform_kind::interval: {
            auto i = as_interval(*v);
            if (!i) return std::nullopt;
            return column == 0 ? i->midpoint() : i->width();
        }
        default:
            return std::nullopt;
    }
}

const raw_value* find_field(const raw_record& r, const std::string& field) {
    auto it = r.find(field);
    return it == r.end() ? nullptr : &it->second;
}

std::string spec_label(const feature_spec& s) {
    return std::string(transform_kind_name(s.transform)) + "(" + s.field + ")";
}

void build_index(fitted_feature& f) {
    f.index.clear();
    for (std::size_t i = 0; i < f.vocabulary.size(); ++i) f.index.emplace(f.vocabulary[i], i);
}

// A few values far from the rest (1e308 sent by an app with a bug) set a
// standardized feature's scale, and every other value then maps to about the
// same number: the feature is lost to the model without a word, and the job
// still succeeds. Said in the job's log when the scale is over 100 times the
// middle half's width and some values lie over 1000 such widths from the
// median. Standardizing is left as it is: what it does is what is served.
std::optional<std::string> extreme_values_note(const feature_spec& s,
                                               const std::vector<raw_record>& rows,
                                               const fitted_feature& f) {
    if (s.transform != transform_kind::numeric && s.transform != transform_kind::log)
        return std::nullopt;
    std::vector<double> xs;
    for (const auto& row : rows) {
        const raw_value* v = find_field(row, s.field);
        auto x = v ? as_number(*v) : std::nullopt;
        if (x) xs.push_back(s.transform == transform_kind::log ? log_value(*x) : *x);
    }
    if (xs.size() < 8) return std::nullopt;
    // Three order statistics, not a sort: each pass partitions what is left.
    const auto at = [&](std::size_t k, std::size_t from) {
        std::nth_element(xs.begin() + static_cast<std::ptrdiff_t>(from),
                         xs.begin() + static_cast<std::ptrdiff_t>(k), xs.end());
        return xs[k];
    };
    const std::size_t k1 = xs.size() / 4, k2 = xs.size() / 2, k3 = xs.size() * 3 / 4;
    const double q1 = at(k1, 0), median = at(k2, k1 + 1), q3 = at(k3, k2 + 1);
    const double width = q3 - q1;
    if (!(width > 0) || !std::isfinite(width) || !(f.scale > 100 * width)) return std::nullopt;
    std::size_t far = 0;
    double example = median;
    for (double x : xs) {
        if (std::fabs(x - median) > 1000 * width) {
            ++far;
            if (std::fabs(x - median) > std::fabs(example - median)) example = x;
        }
    }
    if (!far) return std::nullopt;
    char text[160];
    std::snprintf(text, sizeof text, "(e.g. %g; the middle half lies within [%g, %g])", example, q1,
                  q3);
    return "feature " + spec_label(s) + ": " + std::to_string(far) + " of " +
           std::to_string(xs.size()) + (far == 1 ? " values lies" : " values lie") +
           " far from the rest " + text +
           " and set its scale, so the others barely differ once scaled; check what the app "
           "sends, or read the field with " +
           (s.transform == transform_kind::log ? "bucketize" : "a log or bucketize transform");
}

// Learns one spec's state from the usable values in rows.
fitted_feature fit_one(const feature_spec& s, const std::vector<raw_record>& rows) {
    fitted_feature f;
    std::vector<double> xs, widths;
    std::unordered_map<std::string, std::size_t> counts;
    std::size_t trues = 0, bools = 0;
    for (const auto& row : rows) {
        const raw_value* v = find_field(row, s.field);
        if (!v) continue;
        switch (s.transform) {
            case transform_kind::numeric:
                if (auto x = as_number(*v)) xs.push_back(*x);
                break;
            case transform_kind::log:
                if (auto x = as_number(*v)) xs.push_back(log_value(*x));
                break;
            case transform_kind::category:
                if (auto c = as_category(*v)) ++counts[*c];
                break;
            case transform_kind::boolean:
                if (auto b = as_boolean(*v)) {
                    ++bools;
                    trues += *b ? 1 : 0;
                }
                break;
            case transform_kind::interval:
                if (auto i = as_interval(*v)) {
                    xs.push_back(i->midpoint());
                    widths.push_back(i->width());
                }
                break;
            case transform_kind::binarize:
            case transform_kind::bucketize:
            case transform_kind::text:
                break;  // nothing to learn
        }
    }
    std::tie(f.mean, f.scale) = mean_and_scale(xs);
    std::tie(f.width_mean, f.width_scale) = mean_and_scale(widths);
    f.fill = bools ? static_cast<double>(trues) / static_cast<double>(bools) : 0.0;
    if (s.transform == transform_kind::category) {
        std::vector<std::pair<std::string, std::size_t>> sorted(counts.begin(), counts.end());
        // Most frequent first; ties by value so that the result is deterministic.
        std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
            return a.second != b.second ? a.second > b.second : a.first < b.first;
        });
        if (sorted.size() > s.params.top_n) sorted.resize(s.params.top_n);
        for (auto& [value, count] : sorted) f.vocabulary.push_back(value);
        build_index(f);
    }
    return f;
}

}  // namespace

std::optional<double> as_number(const raw_value& v) {
    if (auto d = std::get_if<double>(&v); d && std::isfinite(*d)) return *d;
    if (auto i = std::get_if<interval>(&v); i && valid_interval(*i)) return i->midpoint();
    return std::nullopt;
}

std::optional<bool> as_boolean(const raw_value& v) {
    if (auto b = std::get_if<bool>(&v)) return *b;
    if (auto d = std::get_if<double>(&v)) {
        if (*d == 0) return false;
        if (*d == 1) return true;
    }
    return std::nullopt;
}

std::optional<std::string> as_category(const raw_value& v) {
    if (auto s = std::get_if<std::string>(&v)) return *s;
    if (auto b = std::get_if<bool>(&v)) return std::string(*b ? "true" : "false");
    if (auto d = std::get_if<double>(&v); d && std::isfinite(*d)) return format_number(*d);
    return std::nullopt;
}

const char* transform_kind_name(transform_kind kind) {
    switch (kind) {
        case transform_kind::numeric:
            return "numeric";
        case transform_kind::log:
            return "log";
        case transform_kind::binarize:
            return "binarize";
        case transform_kind::bucketize:
            return "bucketize";
        case transform_kind::category:
            return "category";
        case transform_kind::text:
            return "text";
        case transform_kind::boolean:
            return "boolean";
        case transform_kind::interval:
            return "interval";
    }
    return "unknown";
}

result<transform_kind> parse_transform_kind(std::string_view name) {
    for (auto k : {transform_kind::numeric, transform_kind::log, transform_kind::binarize,
                   transform_kind::bucketize, transform_kind::category, transform_kind::text,
                   transform_kind::boolean, transform_kind::interval}) {
        if (name == transform_kind_name(k)) return k;
    }
    return invalid("type", "unknown transform '" + std::string(name) +
                               "' (expected numeric, log, binarize, bucketize, category, text, "
                               "boolean or interval)");
}

std::vector<status> spec_problems(const std::vector<feature_spec>& specs) {
    std::vector<status> out;
    if (specs.empty()) out.push_back(invalid("features", "at least one feature is required"));
    std::set<std::pair<std::string, transform_kind>> seen;
    for (std::size_t i = 0; i < specs.size(); ++i) {
        const auto& s = specs[i];
        const std::string where = "features[" + std::to_string(i) + "]";
        if (s.field.empty()) out.push_back(invalid(where + ".field", "field name is empty"));
        if (std::string why = unreadable_field_name(s.field); !why.empty())
            out.push_back(invalid(where + ".field", why));
        if (!seen.emplace(s.field, s.transform).second) {
            out.push_back(invalid(where, "duplicate feature " + spec_label(s)));
        }
        const auto& p = s.params;
        switch (s.transform) {
            case transform_kind::binarize:
                if (!std::isfinite(p.threshold))
                    out.push_back(invalid(where + ".params.threshold", "threshold must be finite"));
                break;
            case transform_kind::bucketize:
                if (p.edges.empty())
                    out.push_back(invalid(where + ".params.edges", "bucketize needs at least one edge"));
                for (std::size_t j = 0; j < p.edges.size(); ++j) {
                    if (!std::isfinite(p.edges[j]) || (j > 0 && !(p.edges[j - 1] < p.edges[j]))) {
                        out.push_back(invalid(where + ".params.edges",
                                              "edges must be finite and strictly increasing"));
                        break;
                    }
                }
                break;
            case transform_kind::category:
                if (p.top_n == 0 || p.top_n > 100000)
                    out.push_back(invalid(where + ".params.top_n", "top_n must be in 1..100000"));
                break;
            case transform_kind::text:
                if (p.buckets == 0 || p.buckets > 1u << 20)
                    out.push_back(invalid(where + ".params.buckets", "buckets must be in 1..1048576"));
                break;
            default:
                break;
        }
    }
    return out;
}

status validate_specs(const std::vector<feature_spec>& specs) {
    auto problems = spec_problems(specs);
    return problems.empty() ? status::ok() : problems.front();
}

result<feature_pipeline> feature_pipeline::fit(const std::vector<feature_spec>& specs,
                                               const std::vector<raw_record>& rows,
                                               std::vector<std::string>* warnings) {
    if (auto st = validate_specs(specs); !st) return st;
    if (rows.empty()) {
        return status(error_kind::failed_precondition, "no training rows to fit features on");
    }
    auto warn = [&](std::string w) {
        if (warnings) warnings->push_back(std::move(w));
    };

    feature_pipeline p;
    p.specs_ = specs;
    std::vector<bool> always_missing(specs.size(), false);
    for (std::size_t i = 0; i < specs.size(); ++i) {
        const auto& s = specs[i];
        std::size_t present = 0, usable = 0;
        const raw_value* example = nullptr;
        for (const auto& row : rows) {
            const raw_value* v = find_field(row, s.field);
            if (!v || std::holds_alternative<std::monostate>(*v)) continue;
            ++present;
            if (is_usable(s.transform, *v)) {
                ++usable;
            } else if (!example) {
                example = v;
            }
        }
        if (present > 0 && usable == 0) {
            return invalid(s.field,
                           "field '" + s.field + "' is never " + expected_kind(s.transform) +
                               " in the training data (found " + raw_value_type_name(*example) +
                               ") for feature " + spec_label(s));
        }
        if (present == 0) {
            always_missing[i] = true;
            warn("dropped feature " + spec_label(s) + ": field '" + s.field +
                 "' is always missing in the training data");
        } else if (usable < present) {
            warn("feature " + spec_label(s) + ": " + std::to_string(present - usable) + " of " +
                 std::to_string(present) + " values are not " + expected_kind(s.transform) +
                 " (e.g. " + raw_value_type_name(*example) + ") and count as missing");
        }
        p.features_.push_back(fit_one(s, rows));
        if (auto note = extreme_values_note(s, rows, p.features_.back())) warn(std::move(*note));
    }

    // Transform every row once and keep only columns that vary: a constant
    // column carries no information and makes some solvers ill-conditioned.
    std::vector<std::size_t> offsets;
    std::size_t total = 0;
    for (std::size_t i = 0; i < specs.size(); ++i) {
        offsets.push_back(total);
        total += column_count(specs[i], p.features_[i]);
    }
    std::vector<double> lo(total, std::numeric_limits<double>::infinity());
    std::vector<double> hi(total, -std::numeric_limits<double>::infinity());
    std::vector<double> buf(total);
    for (const auto& row : rows) {
        for (std::size_t i = 0; i < specs.size(); ++i) {
            write_columns(specs[i], p.features_[i], find_field(row, specs[i].field),
                          buf.data() + offsets[i]);
        }
        for (std::size_t c = 0; c < total; ++c) {
            lo[c] = std::min(lo[c], buf[c]);
            hi[c] = std::max(hi[c], buf[c]);
        }
    }
    for (std::size_t i = 0; i < specs.size(); ++i) {
        auto names = column_names(specs[i], p.features_[i]);
        std::vector<std::string> constant_buckets;
        for (std::size_t j = 0; j < names.size(); ++j) {
            const std::size_t c = offsets[i] + j;
            if (always_missing[i]) continue;  // already reported for the whole feature
            if (lo[c] < hi[c]) {
                p.kept_.push_back(c);
                p.names_.push_back(names[j]);
            } else if (specs[i].transform == transform_kind::text) {
                constant_buckets.push_back(std::to_string(j));
            } else {
                std::optional<double> raw;
                for (std::size_t r = 0; r < rows.size() && !raw; ++r)
                    raw = unscaled_value(specs[i], find_field(rows[r], specs[i].field), j);
                std::string value = format_number(raw ? *raw : lo[c]);
                if (raw && specs[i].transform == transform_kind::log)
                    value += " after the log transform";
                warn("dropped column '" + names[j] + "': constant (" + value +
                     ") in the training data");
            }
        }
        if (!constant_buckets.empty()) {
            // One line for a text feature rather than one per hash bucket.
            std::string list;
            for (const auto& b : constant_buckets) list += (list.empty() ? "" : ",") + b;
            warn("dropped " + std::to_string(constant_buckets.size()) + " of " +
                 std::to_string(names.size()) + " columns of " + spec_label(specs[i]) +
                 ": constant in the training data (buckets " + list + ")");
        }
    }
    if (p.kept_.empty()) {
        return status(error_kind::failed_precondition,
                      "no usable feature columns: every column is constant or always missing "
                      "in the training data");
    }
    return p;
}

std::vector<feature_spec> feature_pipeline::used_specs() const {
    std::vector<feature_spec> out;
    std::size_t offset = 0, k = 0;  // kept_ is in increasing order
    for (std::size_t i = 0; i < specs_.size(); ++i) {
        const std::size_t end = offset + column_count(specs_[i], features_[i]);
        while (k < kept_.size() && kept_[k] < offset) ++k;
        if (k < kept_.size() && kept_[k] < end) out.push_back(specs_[i]);
        offset = end;
    }
    return out;
}

std::vector<std::string> feature_pipeline::column_fields() const {
    std::vector<std::string> out;
    out.reserve(kept_.size());
    std::size_t offset = 0, k = 0;  // kept_ is in increasing order
    for (std::size_t i = 0; i < specs_.size(); ++i) {
        const std::size_t end = offset + column_count(specs_[i], features_[i]);
        for (; k < kept_.size() && kept_[k] < end; ++k) out.push_back(specs_[i].field);
        offset = end;
    }
    return out;
}

std::vector<std::string> feature_pipeline::unseen_categories(const raw_record& record) const {
    std::vector<std::string> out;
    std::size_t offset = 0, k = 0;  // kept_ is in increasing order
    for (std::size_t i = 0; i < specs_.size(); ++i) {
        const std::size_t end = offset + column_count(specs_[i], features_[i]);
        while (k < kept_.size() && kept_[k] < offset) ++k;
        const bool read = k < kept_.size() && kept_[k] < end;
        offset = end;
        if (!read || specs_[i].transform != transform_kind::category) continue;
        const raw_value* v = find_field(record, specs_[i].field);
        if (!v) continue;
        const auto c = as_category(*v);
        // One category spec per field (validate_specs): each field once.
        if (c && !features_[i].index.contains(*c)) out.push_back(specs_[i].field);
    }
    return out;
}

std::vector<double> feature_pipeline::transform(const raw_record& record) const {
    std::size_t total = 0;
    for (std::size_t i = 0; i < specs_.size(); ++i) total += column_count(specs_[i], features_[i]);
    std::vector<double> full(total);
    std::size_t offset = 0;
    for (std::size_t i = 0; i < specs_.size(); ++i) {
        write_columns(specs_[i], features_[i], find_field(record, specs_[i].field),
                      full.data() + offset);
        offset += column_count(specs_[i], features_[i]);
    }
    std::vector<double> out(kept_.size());
    for (std::size_t j = 0; j < kept_.size(); ++j) out[j] = full[kept_[j]];
    return out;
}

std::vector<std::vector<double>> feature_pipeline::transform_all(
    const std::vector<raw_record>& rows) const {
    std::vector<std::vector<double>> out;
    out.reserve(rows.size());
    for (const auto& r : rows) out.push_back(transform(r));
    return out;
}

void feature_pipeline::serialize(std::ostream& out) const {
    dlib::serialize(std::string(pipeline_tag), out);
    dlib::serialize(pipeline_format, out);
    write_u64(specs_.size(), out);
    for (std::size_t i = 0; i < specs_.size(); ++i) {
        const auto& s = specs_[i];
        const auto& f = features_[i];
        dlib::serialize(s.field, out);
        write_u64(static_cast<int>(s.transform), out);
        dlib::serialize(s.params.threshold, out);
        dlib::serialize(s.params.edges, out);
        write_u64(s.params.top_n, out);
        dlib::serialize(s.params.missing_slot, out);
        write_u64(s.params.buckets, out);
        dlib::serialize(s.params.width, out);
        dlib::serialize(f.mean, out);
        dlib::serialize(f.scale, out);
        dlib::serialize(f.width_mean, out);
        dlib::serialize(f.width_scale, out);
        dlib::serialize(f.fill, out);
        dlib::serialize(f.vocabulary, out);
    }
    write_u64(kept_.size(), out);
    for (auto k : kept_) write_u64(k, out);
}

result<feature_pipeline> feature_pipeline::deserialize(std::istream& in) {
    auto bad = [](const std::string& why) {
        return status(error_kind::invalid_argument, "feature pipeline: " + why, "artifact");
    };
    try {
        std::string tag;
        dlib::deserialize(tag, in);
        if (tag != pipeline_tag) return bad("wrong type tag");
        std::uint32_t format = 0;
        dlib::deserialize(format, in);
        if (format > pipeline_format) {
            return bad("format version " + std::to_string(format) +
                       " is newer than this binary supports (" + std::to_string(pipeline_format) +
                       ")");
        }
        feature_pipeline p;
        const std::uint64_t n = read_u64(in);
        if (n == 0 || n > 100000) return bad("implausible feature count");
        std::size_t total = 0;
        for (std::uint64_t i = 0; i < n; ++i) {
            feature_spec s;
            fitted_feature f;
            dlib::deserialize(s.field, in);
            const std::uint64_t kind = read_u64(in);
            if (kind > static_cast<std::uint64_t>(transform_kind::interval))
                return bad("unknown transform code " + std::to_string(kind));
            s.transform = static_cast<transform_kind>(kind);
            dlib::deserialize(s.params.threshold, in);
            dlib::deserialize(s.params.edges, in);
            s.params.top_n = read_u64(in);
            dlib::deserialize(s.params.missing_slot, in);
            s.params.buckets = read_u64(in);
            dlib::deserialize(s.params.width, in);
            dlib::deserialize(f.mean, in);
            dlib::deserialize(f.scale, in);
            dlib::deserialize(f.width_mean, in);
            dlib::deserialize(f.width_scale, in);
            dlib::deserialize(f.fill, in);
            dlib::deserialize(f.vocabulary, in);
            if (f.vocabulary.size() > s.params.top_n) return bad("vocabulary larger than top_n");
            build_index(f);
            total += column_count(s, f);
            p.specs_.push_back(std::move(s));
            p.features_.push_back(std::move(f));
        }
        if (auto st = validate_specs(p.specs_); !st) return bad(st.message());
        const std::uint64_t kept = read_u64(in);
        if (kept == 0 || kept > total) return bad("implausible column count");
        std::vector<std::string> all;
        for (std::size_t i = 0; i < p.specs_.size(); ++i) {
            auto names = column_names(p.specs_[i], p.features_[i]);
            all.insert(all.end(), names.begin(), names.end());
        }
        for (std::uint64_t j = 0; j < kept; ++j) {
            const std::uint64_t c = read_u64(in);
            if (c >= total || (!p.kept_.empty() && c <= p.kept_.back()))
                return bad("column indices out of order");
            p.kept_.push_back(c);
            p.names_.push_back(all[c]);
        }
        return p;
    } catch (const dlib::serialization_error& e) {
        return bad(std::string("corrupt data: ") + e.what());
    } catch (const std::exception& e) {
        return bad(std::string("cannot read: ") + e.what());
    }
}

std::string feature_pipeline::to_bytes() const {
    std::ostringstream out;
    serialize(out);
    return std::move(out).str();
}

result<feature_pipeline> feature_pipeline::from_bytes(std::string_view bytes) {
    std::istringstream in{std::string(bytes)};
    auto p = deserialize(in);
    if (!p) return p;
    if (in.peek() != std::char_traits<char>::eof()) {
        return status(error_kind::invalid_argument, "feature pipeline: trailing bytes", "artifact");
    }
    return p;
}

}  // namespace kennel::ml
