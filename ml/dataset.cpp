#include "ml/dataset.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>

#include "ml/hash.h"
#include "store/time_util.h"

namespace kennel::ml {
namespace {

status label_error(std::string message) {
    return status(error_kind::failed_precondition, std::move(message), "label");
}

std::string row_text(const row_namer& name_row, std::size_t i) {
    return " at " + (name_row ? name_row(i) : "row " + std::to_string(i));
}

// Checks the class count and maps each label to its index in the sorted list.
template <class Key>
result<encoded_labels> index_classes(const std::vector<Key>& keys, std::size_t max_classes,
                                     bool one_class_ok, const char* task, auto&& name_of) {
    std::set<Key> distinct(keys.begin(), keys.end());
    std::vector<Key> sorted(distinct.begin(), distinct.end());
    encoded_labels out;
    for (const auto& k : sorted) out.classes.push_back(name_of(k));
    if (sorted.size() < (one_class_ok ? 1u : 2u)) {
        return label_error("only one class in the labels (" + quoted_classes(out.classes) +
                           "): a classifier needs at least two");
    }
    if (sorted.size() > max_classes) {
        return label_error(std::string(task) + " task allows at most " +
                           std::to_string(max_classes) + " classes, found " +
                           std::to_string(sorted.size()) + " (" + quoted_classes(out.classes) +
                           ")");
    }
    out.y.reserve(keys.size());
    for (const auto& k : keys) {
        out.y.push_back(static_cast<double>(std::lower_bound(sorted.begin(), sorted.end(), k) -
                                            sorted.begin()));
    }
    return out;
}

result<encoded_labels> encode_regression(const std::vector<raw_value>& labels,
                                         const row_namer& name_row) {
    encoded_labels out;
    out.y.reserve(labels.size());
    for (std::size_t i = 0; i < labels.size(); ++i) {
        const auto& v = labels[i];
        if (auto d = std::get_if<double>(&v)) {
            if (!std::isfinite(*d)) return label_error("non-finite number" + row_text(name_row, i));
            out.y.push_back(*d);
        } else if (auto iv = std::get_if<interval>(&v)) {
            if (!std::isfinite(iv->lower) || !std::isfinite(iv->upper) || iv->lower > iv->upper)
                return label_error("invalid interval" + row_text(name_row, i));
            out.y.push_back(iv->midpoint());
        } else {
            return label_error(
                std::string("regression labels must be numbers or intervals; found ") +
                raw_value_type_name(v) + row_text(name_row, i));
        }
    }
    return out;
}

}  // namespace

std::string quoted_classes(const std::vector<std::string>& classes) {
    constexpr std::size_t shown = 8, longest = 64;
    std::string out;
    for (std::size_t i = 0; i < classes.size() && i < shown; ++i) {
        std::string_view name = classes[i];
        bool cut = name.size() > longest;
        if (cut) {
            std::size_t end = longest;  // not inside a UTF-8 character
            while (end > 0 && (static_cast<unsigned char>(name[end]) & 0xC0) == 0x80) --end;
            name = name.substr(0, end);
        }
        out += i ? ", \"" : "\"";
        out += name;
        out += cut ? "...\"" : "\"";
    }
    if (classes.size() > shown) out += " and " + std::to_string(classes.size() - shown) + " more";
    return out;
}

std::string label_type_sql(std::string_view data, std::string_view path) {
    const std::string d(data), p(path);
    return "CASE WHEN json_type(" + d + ", " + p + ") = 'object' THEN CASE WHEN json_type(" + d +
           ", " + p + " || '.value') IN ('integer', 'real') THEN json_type(" + d + ", " + p +
           " || '.value') END ELSE json_type(" + d + ", " + p + ") END";
}

std::string label_value_sql(std::string_view data, std::string_view path) {
    const std::string d(data), p(path);
    return "CASE WHEN json_type(" + d + ", " + p + ") = 'object' THEN json_extract(" + d + ", " +
           p + " || '.value') ELSE json_extract(" + d + ", " + p + ") END";
}

namespace {

// Classes in sorted order (for binary, the later one is the positive).
result<encoded_labels> encode_sorted(task_kind task, const std::vector<raw_value>& labels,
                                     std::size_t max_classes, const row_namer& name_row,
                                     bool one_class_ok) {
    bool any = false;
    for (std::size_t i = 0; i < labels.size(); ++i) {
        if (!std::holds_alternative<std::monostate>(labels[i])) any = true;
    }
    if (!any) return label_error("no labelled rows");
    for (std::size_t i = 0; i < labels.size(); ++i) {
        if (std::holds_alternative<std::monostate>(labels[i]))
            return label_error("missing label" + row_text(name_row, i));
    }
    if (task == task_kind::regression) return encode_regression(labels, name_row);

    // Classification: every label must have the kind of the first one.
    const std::size_t kind = labels[0].index();
    for (std::size_t i = 1; i < labels.size(); ++i) {
        if (labels[i].index() != kind) {
            return label_error(std::string("mixed label types: ") + raw_value_type_name(labels[0]) +
                               row_text(name_row, 0) + " and " + raw_value_type_name(labels[i]) +
                               row_text(name_row, i));
        }
    }
    const bool binary = task == task_kind::binary;
    const char* task_name = task_kind_name(task);
    const std::size_t limit = binary ? 2 : max_classes;

    if (std::holds_alternative<std::string>(labels[0])) {
        std::vector<std::string> keys;
        for (const auto& v : labels) keys.push_back(std::get<std::string>(v));
        return index_classes(keys, limit, one_class_ok, task_name,
                             [](const std::string& s) { return s; });
    }
    if (binary && std::holds_alternative<bool>(labels[0])) {
        std::vector<int> keys;
        for (const auto& v : labels) keys.push_back(std::get<bool>(v) ? 1 : 0);
        return index_classes(keys, limit, one_class_ok, task_name,
                             [](int k) { return std::string(k ? "true" : "false"); });
    }
    if (std::holds_alternative<double>(labels[0])) {
        std::vector<double> keys;
        for (std::size_t i = 0; i < labels.size(); ++i) {
            const double d = std::get<double>(labels[i]);
            if (binary && d != 0 && d != 1) {
                return label_error("binary labels that are numbers must be 0 or 1; found " +
                                   format_number(d) + row_text(name_row, i));
            }
            if (!class_number(d)) {
                return label_error("multiclass labels that are numbers must be integers; found " +
                                   format_number(d) + row_text(name_row, i));
            }
            keys.push_back(d);
        }
        // Written in full, as the label was sent and as live metrics name an
        // outcome (to_chars's shortest form made 100000 the class "1e+05").
        return index_classes(keys, limit, one_class_ok, task_name,
                             [](double k) { return std::to_string(static_cast<long long>(k)); });
    }
    return label_error(std::string(binary ? "binary labels must be booleans, 0/1 or two strings"
                                          : "multiclass labels must be strings or integers") +
                       "; found " + raw_value_type_name(labels[0]) + row_text(name_row, 0));
}

}  // namespace

result<encoded_labels> encode_labels(task_kind task, const std::vector<raw_value>& labels,
                                     std::size_t max_classes, const row_namer& name_row,
                                     bool one_class_ok,
                                     const std::optional<std::string>& positive) {
    auto out = encode_sorted(task, labels, max_classes, name_row, one_class_ok);
    if (!out || task != task_kind::binary || !positive) return out;
    auto& classes = out->classes;
    if (std::find(classes.begin(), classes.end(), *positive) == classes.end()) {
        if (one_class_ok && classes.size() < 2) return out;  // the prior of one class
        return label_error("the positive class \"" + *positive +
                           "\" (label.positive) is not among the labels (" +
                           quoted_classes(classes) + ")");
    }
    if (classes.size() == 2 && classes[0] == *positive) {
        std::swap(classes[0], classes[1]);
        for (double& y : out->y) y = 1 - y;
    }
    return out;
}

bool class_number(double x) {
    return std::isfinite(x) && x == std::floor(x) && std::abs(x) <= 9007199254740992.0;
}

double unit_hash(std::string_view entity) {
    // The top 53 bits fit a double exactly, so the result is < 1.
    return std::ldexp(static_cast<double>(fmix64(fnv1a64(entity)) >> 11), -53);
}

namespace {

// A holdout share as the split rules take it: within [0, 1], NaN as 0.
double share_in_range(double share) {
    return std::isnan(share) ? 0.0 : std::clamp(share, 0.0, 1.0);
}

}  // namespace

bool holdout_of(std::string_view entity, double share) {
    if (!(share > 0)) return false;  // also NaN
    if (share >= 1) return true;
    // h / 2^64 < share  <=>  h < share * 2^64  <=>  h < ceil(share * 2^64) for an
    // integer h; the scaling by a power of two is exact.
    const double bound = std::ceil(std::ldexp(share, 64));
    if (bound >= 18446744073709551616.0) return true;
    return fmix64(fnv1a64(entity)) < static_cast<std::uint64_t>(bound);
}

std::string holdout_rule(double share) {
    const double s = share_in_range(share);
    return "fmix64(fnv1a64(entity)) / 2^64 < " + format_number(s);
}

std::optional<std::int64_t> holdout_from_time(std::vector<std::int64_t> times, double share,
                                              std::size_t min_train, std::size_t min_test) {
    if (times.empty()) return std::nullopt;
    const double s = share_in_range(share);
    const auto n = times.size();
    const auto k = std::clamp<std::size_t>(
        static_cast<std::size_t>(std::llround(s * static_cast<double>(n))), 1, n);
    std::sort(times.begin(), times.end());
    // Rows at one time stay on one side: the cut is at the k-th newest
    // time (its ties join the holdout) or at the next time after it (they
    // join training). One that leaves both sides their minimum rows wins;
    // else the closer to k rows; of two as close, the larger holdout, unless
    // it leaves nothing to train on.
    const std::int64_t at = times[n - k];
    const auto first_at =
        static_cast<std::size_t>(std::lower_bound(times.begin(), times.end(), at) - times.begin());
    const auto after = std::upper_bound(times.begin(), times.end(), at);
    if (after == times.end()) return at;
    const std::size_t with_ties = n - first_at;
    const auto without = static_cast<std::size_t>(times.end() - after);
    auto enough = [&](std::size_t holdout) {
        return n - holdout >= min_train && holdout >= min_test;
    };
    if (enough(with_ties) != enough(without)) return enough(with_ties) ? at : *after;
    const bool closer = k - without < with_ties - k;
    return closer || first_at == 0 ? *after : at;
}

std::string holdout_time_rule(std::int64_t from, double share, std::size_t held, std::size_t rows) {
    const double s = share_in_range(share);
    return "label time >= " + format_rfc3339(from) + " (share " + format_number(s) +
           " asked: " + std::to_string(held) + " of " + std::to_string(rows) + " labelled rows)";
}

}  // namespace kennel::ml
