#include "ml/drift.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

namespace kennel::ml {
namespace {

using json = nlohmann::json;

bool reads_number(transform_kind t) {
    switch (t) {
        case transform_kind::numeric:
        case transform_kind::log:
        case transform_kind::binarize:
        case transform_kind::bucketize:
        case transform_kind::interval:
            return true;
        default:
            return false;
    }
}

std::string number_text(double x) {
    std::ostringstream s;
    s.precision(6);
    s << x;
    return s.str();
}

// The category a value counts as; nullopt for missing.
std::optional<std::string> category_of(const field_profile& f, const raw_value& v) {
    if (f.boolean) {
        auto b = as_boolean(v);
        if (!b) return std::nullopt;
        return std::string(*b ? "true" : "false");
    }
    return as_category(v);
}

std::size_t value_bin(const std::vector<std::string>& values, std::string_view v) {
    auto it = std::lower_bound(values.begin(), values.end(), v,
                               [](const std::string& a, std::string_view b) { return a < b; });
    if (it != values.end() && *it == v) return static_cast<std::size_t>(it - values.begin());
    return values.size();  // other
}

// std::string's order, byte by byte: field names are a few bytes, where a
// call to memcmp cost more than the comparison (a third of observe()).
int compare_names(const std::string& a, const std::string& b) {
    const std::size_t n = std::min(a.size(), b.size());
    for (std::size_t k = 0; k < n; ++k) {
        const auto x = static_cast<unsigned char>(a[k]), y = static_cast<unsigned char>(b[k]);
        if (x != y) return x < y ? -1 : 1;
    }
    return a.size() < b.size() ? -1 : a.size() > b.size() ? 1 : 0;
}

void normalise(std::vector<double>& counts, std::size_t total) {
    for (double& c : counts) c = total ? c / static_cast<double>(total) : 0.0;
}

}  // namespace

std::size_t field_profile::bin_of(const raw_value& v) const {
    if (kind == profile_kind::number) {
        const double* d = std::get_if<double>(&v);  // the common case, without a copy
        auto x = d && std::isfinite(*d) ? std::optional<double>(*d) : as_number(v);
        if (!x) return bins();
        // The edges at or below x, counted without branches: which way a
        // binary search goes at each of its steps is unpredictable.
        std::size_t bin = 0;
        for (double e : edges) bin += e <= *x;
        return bin;
    }
    // Strings are looked up in place: no copy on the request path.
    if (!boolean) {
        if (auto s = std::get_if<std::string>(&v)) return value_bin(values, *s);
    }
    auto c = category_of(*this, v);
    if (!c) return bins();
    return value_bin(values, *c);
}

const char* field_profile::bin_kind(std::size_t bin) const {
    if (bin >= bins()) return "missing";
    if (kind == profile_kind::number) return "range";
    return bin < values.size() ? "value" : "other";
}

std::string field_profile::bin_name(std::size_t bin) const {
    if (bin >= bins()) return "missing";
    if (kind == profile_kind::category) return bin < values.size() ? values[bin] : "other";
    if (edges.empty()) return "all";
    std::string lo = bin == 0 ? "(-inf" : "[" + number_text(edges[bin - 1]);
    std::string hi = bin == edges.size() ? "inf)" : number_text(edges[bin]) + ")";
    return lo + ", " + hi;
}

namespace {

// Ten bins at the deciles of xs (sorted here); `missing` more rows had none.
field_profile number_profile(std::string name, std::vector<double> xs, std::size_t missing) {
    field_profile f;
    f.field = std::move(name);
    std::sort(xs.begin(), xs.end());
    for (std::size_t k = 1; k < profile_number_bins && !xs.empty(); ++k) {
        double q = xs[k * xs.size() / profile_number_bins];
        // Strictly increasing, and no bin that training left empty.
        if (q > xs.front() && (f.edges.empty() || q > f.edges.back())) f.edges.push_back(q);
    }
    std::vector<double> counts(f.bins(), 0.0);
    for (double x : xs) counts[f.bin_of(raw_value(x))] += 1;
    counts.push_back(static_cast<double>(missing));
    normalise(counts, xs.size() + missing);
    f.shares = std::move(counts);
    return f;
}

// The most frequent values (ties by value), then other; `missing` more rows had none.
field_profile category_profile(std::string name, bool boolean,
                               const std::map<std::string, std::size_t>& seen,
                               std::size_t missing) {
    field_profile f;
    f.field = std::move(name);
    f.kind = profile_kind::category;
    f.boolean = boolean;
    std::vector<std::pair<std::string, std::size_t>> by_count(seen.begin(), seen.end());
    std::stable_sort(by_count.begin(), by_count.end(),
                     [](const auto& a, const auto& b) { return a.second > b.second; });
    if (by_count.size() > profile_category_values) by_count.resize(profile_category_values);
    for (const auto& [v, n] : by_count) f.values.push_back(v);
    std::sort(f.values.begin(), f.values.end());
    std::vector<double> counts(f.bins(), 0.0);
    std::size_t total = missing;
    for (const auto& [v, n] : seen) {
        counts[value_bin(f.values, v)] += static_cast<double>(n);
        total += n;
    }
    counts.push_back(static_cast<double>(missing));
    normalise(counts, total);
    f.shares = std::move(counts);
    return f;
}

}  // namespace

feature_profile profile_rows(const std::vector<feature_spec>& specs,
                             const std::vector<raw_record>& rows) {
    // The transforms each field is read by, by name.
    std::map<std::string, std::vector<transform_kind>> reads;
    for (const auto& s : specs) reads[s.field].push_back(s.transform);
    feature_profile out;
    out.rows = rows.size();
    for (const auto& [name, kinds] : reads) {
        bool number = std::any_of(kinds.begin(), kinds.end(), reads_number);
        bool boolean = std::count(kinds.begin(), kinds.end(), transform_kind::boolean) > 0;
        bool category = std::count(kinds.begin(), kinds.end(), transform_kind::category) > 0;
        if (!number && !boolean && !category) continue;  // text only: not profiled
        if (number) {
            std::vector<double> xs;
            xs.reserve(rows.size());
            for (const auto& r : rows) {
                auto it = r.find(name);
                auto x = it == r.end() ? std::nullopt : as_number(it->second);
                if (x) xs.push_back(*x);
            }
            const std::size_t missing = rows.size() - xs.size();
            out.fields.push_back(number_profile(name, std::move(xs), missing));
            continue;
        }
        field_profile reader;  // how the values are read, before the bins exist
        reader.kind = profile_kind::category;
        reader.boolean = !category;
        std::map<std::string, std::size_t> seen;
        std::size_t missing = 0;
        for (const auto& r : rows) {
            auto it = r.find(name);
            auto c = it == r.end() ? std::nullopt : category_of(reader, it->second);
            if (c) {
                ++seen[*c];
            } else {
                ++missing;
            }
        }
        out.fields.push_back(category_profile(name, reader.boolean, seen, missing));
    }
    return out;
}

raw_value prediction_output(task_kind task, double value, const std::vector<double>& probabilities,
                            const std::string& label) {
    switch (task) {
        case task_kind::regression:
            return value;
        case task_kind::binary:
            if (probabilities.size() == 2) return probabilities[1];
            return raw_value{};
        case task_kind::multiclass:
            return label;
    }
    return raw_value{};
}

field_profile profile_predictions(task_kind task, const std::vector<raw_value>& outputs) {
    if (task == task_kind::multiclass) {
        std::map<std::string, std::size_t> seen;
        std::size_t missing = 0;
        for (const auto& o : outputs) {
            if (auto s = std::get_if<std::string>(&o)) {
                ++seen[*s];
            } else {
                ++missing;
            }
        }
        return category_profile("prediction", false, seen, missing);
    }
    std::vector<double> xs;
    for (const auto& o : outputs) {
        if (auto x = as_number(o)) xs.push_back(*x);
    }
    const std::size_t missing = outputs.size() - xs.size();
    return number_profile("prediction", std::move(xs), missing);
}

namespace {

json field_json(const field_profile& f) {
    json j = {{"field", f.field},
              {"kind", f.kind == profile_kind::number ? "number" : "category"},
              {"shares", f.shares}};
    if (f.kind == profile_kind::number) {
        j["edges"] = f.edges;
    } else {
        j["values"] = f.values;
        j["boolean"] = f.boolean;
    }
    return j;
}

// Throws json::exception on a missing or mistyped member.
std::optional<field_profile> field_from(const json& jf) {
    field_profile f;
    f.field = jf.at("field").get<std::string>();
    const std::string kind = jf.at("kind").get<std::string>();
    if (kind == "number") {
        f.edges = jf.at("edges").get<std::vector<double>>();
        auto out_of_order = [](double a, double b) { return !(a < b); };
        if (std::adjacent_find(f.edges.begin(), f.edges.end(), out_of_order) != f.edges.end())
            return std::nullopt;
    } else if (kind == "category") {
        f.kind = profile_kind::category;
        f.values = jf.at("values").get<std::vector<std::string>>();
        f.boolean = jf.value("boolean", false);
        if (!std::is_sorted(f.values.begin(), f.values.end())) return std::nullopt;
    } else {
        return std::nullopt;
    }
    f.shares = jf.at("shares").get<std::vector<double>>();
    if (f.shares.size() != f.bins() + 1) return std::nullopt;
    return f;
}

std::optional<feature_profile> profile_from(const json& j) {
    if (!j.is_object() || !j.contains("fields") || !j["fields"].is_array()) return std::nullopt;
    feature_profile p;
    if (j.contains("rows") && j["rows"].is_number_unsigned()) p.rows = j["rows"].get<std::size_t>();
    try {
        for (const auto& jf : j["fields"]) {
            auto f = field_from(jf);
            if (!f) return std::nullopt;
            if (!p.fields.empty() && !(p.fields.back().field < f->field)) return std::nullopt;
            p.fields.push_back(std::move(*f));
        }
        if (j.contains("prediction") && !j["prediction"].is_null()) {
            p.prediction = field_from(j["prediction"]);
            if (!p.prediction) return std::nullopt;
        }
    } catch (const json::exception&) {
        return std::nullopt;
    }
    return p;
}

}  // namespace

std::string profile_to_json(const feature_profile& p) {
    json fields = json::array();
    for (const auto& f : p.fields) fields.push_back(field_json(f));
    json out = {{"rows", p.rows}, {"fields", fields}};
    if (p.prediction) out["prediction"] = field_json(*p.prediction);
    return out.dump();
}

std::optional<feature_profile> profile_from_json(std::string_view text) {
    return profile_from(json::parse(text, nullptr, false));
}

std::optional<feature_profile> profile_in_features(std::string_view features_json) {
    json f = json::parse(features_json, nullptr, false);
    if (!f.is_object() || !f.contains("profile")) return std::nullopt;
    return profile_from(f["profile"]);
}

namespace {

void subtract_bins(std::vector<std::uint64_t>& a, const std::vector<std::uint64_t>& b) {
    for (std::size_t k = 0; k < a.size() && k < b.size(); ++k) a[k] -= std::min(a[k], b[k]);
}

field_drift drift_of(const field_profile& f, const std::vector<std::uint64_t>& counts) {
    field_drift d;
    d.field = f.field;
    d.expected = f.shares;
    d.psi = population_stability_index(f.shares, counts);
    std::uint64_t total = 0;
    for (auto n : counts) total += n;
    for (std::size_t k = 0; k <= f.bins(); ++k) {
        d.bins.push_back(f.bin_name(k));
        d.kinds.push_back(f.bin_kind(k));
        const std::uint64_t n = k < counts.size() ? counts[k] : 0;
        d.observed.push_back(total ? static_cast<double>(n) / static_cast<double>(total) : 0.0);
    }
    return d;
}

}  // namespace

drift_counts subtract(const drift_counts& a, const drift_counts& b) {
    drift_counts out = a;
    out.observed -= std::min(out.observed, b.observed);
    out.predicted -= std::min(out.predicted, b.predicted);
    for (std::size_t f = 0; f < out.bins.size() && f < b.bins.size(); ++f) {
        subtract_bins(out.bins[f], b.bins[f]);
    }
    subtract_bins(out.prediction, b.prediction);
    return out;
}

double population_stability_index(const std::vector<double>& expected,
                                  const std::vector<std::uint64_t>& observed) {
    constexpr double floor = 1e-4;
    std::uint64_t total = 0;
    for (auto c : observed) total += c;
    if (total == 0) return 0;
    double psi = 0;
    for (std::size_t k = 0; k < expected.size() && k < observed.size(); ++k) {
        const double e = std::max(expected[k], floor);
        const double a =
            std::max(static_cast<double>(observed[k]) / static_cast<double>(total), floor);
        psi += (a - e) * std::log(a / e);
    }
    return psi;
}

drift_report compare_to_profile(const feature_profile& p, const drift_counts& c) {
    drift_report out;
    out.observed = c.observed;
    for (std::size_t i = 0; i < p.fields.size() && i < c.bins.size(); ++i) {
        field_drift d = drift_of(p.fields[i], c.bins[i]);
        std::uint64_t total = 0;
        for (auto n : c.bins[i]) total += n;
        if (total && (out.worst_field.empty() || d.psi > out.worst_psi)) {
            out.worst_field = d.field;
            out.worst_psi = d.psi;
        }
        out.fields.push_back(std::move(d));
    }
    out.predicted = c.predicted;
    if (p.prediction) out.prediction = drift_of(*p.prediction, c.prediction);
    return out;
}

drift_verdict judge_drift(const drift_report& r, double bound, std::uint64_t min_samples) {
    drift_verdict v;
    v.enough_requests = r.observed >= min_samples;
    v.inputs = v.enough_requests && !r.worst_field.empty() && r.worst_psi > bound;
    // The answers count too: inputs can move together in ways no single
    // field shows.
    v.answers = r.prediction && r.predicted >= min_samples && r.prediction->psi > bound;
    return v;
}

namespace {

std::atomic<std::uint64_t> next_monitor_id{1};

// Only the owning thread writes a stripe: no read-modify-write needed.
void bump(std::atomic<std::uint64_t>& counter) {
    counter.store(counter.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

}  // namespace

drift_monitor::drift_monitor(feature_profile reference)
    : id_(next_monitor_id.fetch_add(1, std::memory_order_relaxed)), ref_(std::move(reference)) {
    std::size_t total = 0;
    for (const auto& f : ref_.fields) {
        first_bin_.push_back(total);
        total += f.bins() + 1;
    }
    prediction_bin_ = total;
    if (ref_.prediction) total += ref_.prediction->bins() + 1;
    observed_slot_ = total;
    predicted_slot_ = total + 1;
    total += 2;
    constexpr std::size_t line = 64 / sizeof(std::atomic<std::uint64_t>);
    // Whole lines, and one more: stripes of different threads never share one.
    stripe_size_ = (total + line - 1) / line * line + line;
}

std::atomic<std::uint64_t>* drift_monitor::own_stripe() const {
    struct cached {
        std::uint64_t monitor = 0;
        std::atomic<std::uint64_t>* stripe = nullptr;
    };
    thread_local std::array<cached, 64> cache;
    cached& c = cache[id_ % cache.size()];
    if (c.monitor == id_) return c.stripe;
    std::lock_guard lock(stripes_mu_);
    auto& mine = by_thread_[std::this_thread::get_id()];
    if (!mine) {
        stripes_.push_back(std::make_unique<std::atomic<std::uint64_t>[]>(stripe_size_));
        for (std::size_t k = 0; k < stripe_size_; ++k) {
            stripes_.back()[k].store(0, std::memory_order_relaxed);
        }
        mine = stripes_.back().get();
    }
    c = {id_, mine};
    return mine;
}

void drift_monitor::observe(const raw_record& r) const {
    std::atomic<std::uint64_t>* stripe = own_stripe();
    // Both are sorted by name: one walk, no lookups.
    auto it = r.begin();
    for (std::size_t i = 0; i < ref_.fields.size(); ++i) {
        const field_profile& f = ref_.fields[i];
        int order = -1;
        while (it != r.end() && (order = compare_names(it->first, f.field)) < 0) ++it;
        bump(stripe[first_bin_[i] +
                    (it != r.end() && order == 0 ? f.bin_of(it->second) : f.bins())]);
    }
    bump(stripe[observed_slot_]);
}

void drift_monitor::observe_prediction(const raw_value& output) const {
    if (!ref_.prediction) return;
    std::atomic<std::uint64_t>* stripe = own_stripe();
    bump(stripe[prediction_bin_ + ref_.prediction->bin_of(output)]);
    bump(stripe[predicted_slot_]);
}

std::uint64_t drift_monitor::sum(std::size_t slot) const {
    std::uint64_t n = 0;
    for (const auto& s : stripes_) n += s[slot].load(std::memory_order_relaxed);
    return n;
}

drift_counts drift_monitor::counts() const {
    std::lock_guard lock(stripes_mu_);
    drift_counts out;
    out.observed = sum(observed_slot_);
    for (std::size_t i = 0; i < ref_.fields.size(); ++i) {
        std::vector<std::uint64_t> bins(ref_.fields[i].bins() + 1);
        for (std::size_t k = 0; k < bins.size(); ++k) bins[k] = sum(first_bin_[i] + k);
        out.bins.push_back(std::move(bins));
    }
    out.predicted = sum(predicted_slot_);
    if (ref_.prediction) {
        out.prediction.resize(ref_.prediction->bins() + 1);
        for (std::size_t k = 0; k < out.prediction.size(); ++k) {
            out.prediction[k] = sum(prediction_bin_ + k);
        }
    }
    return out;
}

void drift_monitor::mark(std::chrono::steady_clock::time_point now,
                         std::chrono::seconds window) const {
    std::lock_guard lock(mu_);
    if (marks_.empty()) {
        // The first look starts the window at zero: what was asked since the
        // version was loaded (up to a supervisor tick before) is in it, as it
        // is in the error rate's window. A first mark of the counts then left
        // out the requests made just after a promotion or a restore.
        drift_counts zero = counts();
        zero.observed = 0;
        zero.predicted = 0;
        for (auto& b : zero.bins) std::fill(b.begin(), b.end(), 0);
        std::fill(zero.prediction.begin(), zero.prediction.end(), 0);
        marks_.push_back({now, std::move(zero)});
        return;
    }
    if (now - marks_.back().at >= window / 30) marks_.push_back({now, counts()});
    while (marks_.size() >= 2 && marks_[1].at <= now - window) marks_.pop_front();
}

std::optional<drift_monitor::window_counts> drift_monitor::recent() const {
    std::lock_guard lock(mu_);
    if (marks_.empty()) return std::nullopt;
    return window_counts{subtract(counts(), marks_.front().counts), marks_.front().at};
}

}  // namespace kennel::ml
