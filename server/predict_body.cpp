#include "server/predict_body.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>

#include "ml/explain.h"
#include "ml/hash.h"
#include "server/fact_json.h"
#include "server/json_body.h"
#include "store/json_writer.h"

namespace kennel {
namespace {

using json = nlohmann::json;

// --- the features' hash, shared by both readers ----------------------------

std::uint64_t hash_key(std::uint64_t h, std::string_view key) {
    h = ml::fnv1a64_update(h, key);
    return ml::fnv1a64_update(h, std::string_view("\0", 1));
}

std::uint64_t hash_number(std::uint64_t h, double x) {
    // The double's bits, least significant byte first on every platform.
    const auto bits = std::bit_cast<std::uint64_t>(x);
    char bytes[9] = {'n'};
    for (int i = 0; i < 8; ++i) bytes[1 + i] = static_cast<char>((bits >> (8 * i)) & 0xff);
    return ml::fnv1a64_update(h, std::string_view(bytes, sizeof bytes));
}

std::uint64_t hash_string(std::uint64_t h, std::string_view s) {
    h = ml::fnv1a64_update(h, "s");
    h = ml::fnv1a64_update(h, s);
    return ml::fnv1a64_update(h, std::string_view("\0", 1));
}

std::uint64_t hash_boolean(std::uint64_t h, bool b) {
    return ml::fnv1a64_update(h, b ? "t" : "f");
}

std::uint64_t hash_null(std::uint64_t h) {
    return ml::fnv1a64_update(h, "z");
}

void list_missing(const ml::model_serving& m, predict_instance& out) {
    for (const auto& field : m.fields) {
        if (!field.fallback_only && !out.record.count(field.name))
            out.missing.push_back(field.name);
    }
}

// --- the document reader -----------------------------------------------------

constexpr int max_feature_depth = 4;

// Whether `v` holds arrays or objects more than `limit` levels deep; the
// recursion stops at the limit.
bool nested_deeper_than(const json& v, int limit) {
    if (!v.is_structured()) return false;
    if (limit == 0) return true;
    for (const auto& item : v) {
        if (nested_deeper_than(item, limit - 1)) return true;
    }
    return false;
}

std::uint64_t hash_member(std::uint64_t h, std::string_view key, const json& v) {
    h = hash_key(h, key);
    if (v.is_number()) return hash_number(h, v.get<double>());
    if (v.is_string()) return hash_string(h, v.get_ref<const std::string&>());
    if (v.is_boolean()) return hash_boolean(h, v.get<bool>());
    if (v.is_null()) return hash_null(h);
    return ml::fnv1a64_update(h, v.dump());  // intervals and other objects: rare
}

// The field's path is built only for an error: this runs for every field of
// every prediction.
status check_feature_type(const ml::feature_spec& spec, const json& v, std::string_view prefix,
                          std::string_view key) {
    auto path = [&] { return std::string(prefix).append(key); };
    if (v.is_null()) return status::ok();  // missing: imputed as in training
    switch (spec.transform) {
        case ml::transform_kind::numeric:
        case ml::transform_kind::log:
        case ml::transform_kind::binarize:
        case ml::transform_kind::bucketize:
        case ml::transform_kind::interval:
            if (v.is_number()) break;
            if (v.is_object()) {
                // A fact's rules for a number with its uncertainty: to_raw
                // reads the bounds, or else the value, as numbers. (Bounds
                // that were not numbers beside a numeric value were a 500.)
                if (status s = check_uncertainty(v, path()); !s) return s;
                if (v.contains("lower") || (v.contains("value") && v["value"].is_number()))
                    break;
            }
            return invalid(
                path(),
                std::string("must be a number (or an interval {\"lower\",\"upper\"}) for the ") +
                    ml::transform_kind_name(spec.transform) + " transform, not " + v.type_name());
        case ml::transform_kind::category:
            if (v.is_string() || v.is_number() || v.is_boolean()) break;
            // A number with its uncertainty, {"value": 2, "confidence": ...}:
            // training reads a fact's such field as its value, so does serving.
            if (v.is_object() && !v.contains("lower") && v.contains("value") &&
                v["value"].is_number()) {
                if (status s = check_uncertainty(v, path()); !s) return s;
                if (!std::isfinite(v["value"].get<double>()))
                    return invalid(path() + ".value", "must be finite");
                break;
            }
            return invalid(path(), std::string("must be a string, number, boolean or "
                                               "{\"value\": number}, not ") +
                                       v.type_name());
        case ml::transform_kind::text:
            if (v.is_string()) break;
            return invalid(path(), std::string("must be a string, not ") + v.type_name());
        case ml::transform_kind::boolean: {
            if (v.is_boolean() || (v.is_number() && (v.get<double>() == 0 || v.get<double>() == 1)))
                break;
            // {"value": 0 or 1, ...}, read as training reads it.
            const bool value_object =
                v.is_object() && !v.contains("lower") && v.contains("value") &&
                v["value"].is_number() &&
                (v["value"].get<double>() == 0 || v["value"].get<double>() == 1);
            if (value_object) {
                if (status s = check_uncertainty(v, path()); !s) return s;
                break;
            }
            return invalid(path(), std::string("must be true or false, not ") + v.dump());
        }
    }
    if (v.is_number() && !std::isfinite(v.get<double>())) return invalid(path(), "must be finite");
    return status::ok();
}

ml::raw_value to_raw(const json& v) {
    if (v.is_boolean()) return v.get<bool>();
    if (v.is_number()) return v.get<double>();
    if (v.is_string()) return v.get<std::string>();
    if (v.is_object()) {
        if (v.contains("lower") && v.contains("upper")) {
            return ml::interval{v["lower"].get<double>(), v["upper"].get<double>()};
        }
        if (v.contains("value")) return v["value"].get<double>();
    }
    return {};
}

// The own record of the experiment arm the entity is routed to (chosen as
// the handler chooses it), when it computes an aggregate otherwise: read
// with the request, as live's values are. A version down the fallback
// chain is not (its history would be read on every request for the rare
// answer it gives: it is passed over), and a shadow reads its own after
// the answer.
status arm_aggregates(const ml::model_serving& m, stored_feature_reader& reader,
                      predict_instance& out) {
    if (m.arms.empty()) return {};
    const ml::serving_arm* arm = ml::choose_arm(m, out.entity);
    if (!arm || !arm->version || !m.computes_own_aggregates(arm->version->version)) return {};
    auto own = read_own_values(reader, m.definition.aggregates,
                               own_aggregate_specs(m, *arm->version), arm->version->version, out);
    if (!own) return own.error();
    if (!*own) return {};
    if (reader.cut) out.aggregates->complete = false;
    out.own.push_back(std::move(**own));
    return {};
}

// `path` names the instance in errors ("" for the single form, whose object
// may also carry the request's "deadline_ms" and "explain").
result<predict_instance> document_instance(const ml::model_serving& m, const json& j,
                                           const std::string& path, stored_feature_reader* stored) {
    if (!j.is_object())
        return invalid(path, "an instance must be an object {\"entity\", \"features\"}");
    for (const auto& [k, v] : j.items()) {
        (void)v;
        if ((k == "deadline_ms" || k == "explain") && path.empty()) continue;
        if (k != "entity" && k != "features" && k != "stored_features")
            return invalid(path.empty() ? k : path + "." + k, "unknown field");
    }
    const auto named = [&](const char* field) {
        return path.empty() ? std::string(field) : path + "." + field;
    };
    bool use_stored = false;
    if (auto s = j.find("stored_features"); s != j.end()) {
        if (!s->is_boolean()) return invalid(named("stored_features"), "must be true or false");
        use_stored = s->get<bool>();
    }
    predict_instance out;
    if (auto e = j.find("entity"); e != j.end() && !e->is_null()) {
        if (!e->is_string())
            return invalid(path.empty() ? "entity" : path + ".entity", "must be a string");
        out.entity = e->get<std::string>();
        // As a fact's: an outcome could not carry any other.
        if (std::string problem = entity_problem(out.entity); !problem.empty()) {
            return invalid(path.empty() ? "entity" : path + ".entity",
                           problem +
                               ", as a fact's (its outcome could not carry it); leave it "
                               "out for none");
        }
    }
    auto f = j.find("features");
    if (f == j.end() && !use_stored) return invalid(named("features"), "missing");
    if (f != j.end() && !f->is_object()) return invalid(named("features"), "must be an object");
    std::string prefix = path.empty() ? "features." : path + ".features.";
    // Stored features: the fields not sent (or sent null) that a version
    // reads, from the entity's fact as of now, where their values fit as
    // sent ones must (one that does not is left out: imputed, as training
    // reads it as missing). Checked and hashed below like sent ones.
    json merged;
    if (use_stored) {
        if (out.entity.empty())
            return invalid(named("entity"),
                           "missing: \"stored_features\" reads the entity's newest fact");
        if (!stored) return invalid(named("stored_features"), "not available here");
        const std::string& stream = m.definition.features_from;
        auto got = stored->read(m, out.entity);
        if (!got) return got.error();
        out.stored = predict_instance::stored_source{stream, std::nullopt, 0, {}};
        merged = f != j.end() ? *f : json::object();
        if (*got) {
            out.stored->fact = (*got)->id;
            out.stored->time = (*got)->event_time;
            json data = json::parse((*got)->data_json, nullptr, false);
            if (data.is_object()) {
                for (const auto& [k, v] : data.items()) {
                    auto sent = merged.find(k);
                    if ((sent != merged.end() && !sent->is_null()) || v.is_null()) continue;
                    // An aggregate is computed, as training computes it,
                    // whatever a fact holds under its name.
                    if (ml::aggregate_of(m.definition, k)) continue;
                    bool fits = false, read = false;
                    for (const auto* specs : {&m.definition.features, &m.fallback_features}) {
                        for (const auto& spec : *specs) {
                            if (spec.field != k) continue;
                            read = true;
                            fits = check_feature_type(spec, v, prefix, k).is_ok() &&
                                   !nested_deeper_than(v, max_feature_depth);
                            if (!fits) break;
                        }
                        if (read) break;
                    }
                    if (!fits) continue;
                    merged[k] = v;
                    out.stored->fields.push_back(k);
                }
            }
        }
    }
    // Aggregates: computed for the fields not sent (or sent null), from the
    // entity's history before the moment its features stand for. The
    // moment is kept for versions that compute their own (a shadow reads
    // them after the answer) even when the snapshot computes none.
    bool use_merged = use_stored;
    if (!out.entity.empty() && (!m.definition.aggregates.empty() || !m.own_aggregates.empty())) {
        if (!stored) return invalid(named("entity"), "aggregate features are not available here");
        out.aggregates = predict_instance::aggregate_source{
            out.stored && out.stored->fact ? out.stored->time : now_micros(), {}};
    }
    if (out.aggregates && !m.definition.aggregates.empty()) {
        if (!use_merged) merged = *f;
        use_merged = true;
        std::vector<ml::aggregate_spec> wanted;
        for (const auto& a : m.definition.aggregates) {
            auto sent = merged.find(a.field);
            if (sent == merged.end() || sent->is_null()) wanted.push_back(a);
        }
        auto values = stored->aggregates(wanted, out.entity, out.aggregates->as_of);
        if (!values) return values.error();
        // Incomplete only when something was to read (the cut is sticky
        // across a batch's instances).
        if (!wanted.empty()) out.aggregates->complete = !stored->cut;
        for (std::size_t i = 0; i < wanted.size(); ++i) {
            out.aggregates->values.emplace_back(wanted[i].field, (*values)[i]);
            if ((*values)[i]) merged[wanted[i].field] = *(*values)[i];
        }
    }
    const json& features = use_merged ? merged : *f;
    std::uint64_t h = ml::fnv1a64_offset;
    // The document keeps members in key order, so the record is built at its end.
    for (const auto& [k, v] : features.items()) {
        // Hashing writes the value out recursively: a value nested 100,000
        // deep (a 200 KB body) would overflow the stack.
        if (nested_deeper_than(v, max_feature_depth)) {
            return invalid(prefix + k, "nested deeper than " + std::to_string(max_feature_depth) +
                                           " (a feature value is a scalar or an interval)");
        }
        h = hash_member(h, k, v);
        bool known = false;
        for (const auto& spec : m.definition.features) {
            if (spec.field != k) continue;
            known = true;
            if (status s = check_feature_type(spec, v, prefix, k); !s) return s;
        }
        if (!known) {
            // A field only the fallback chain reads: kept when it fits.
            bool fits = false;
            for (const auto& spec : m.fallback_features) {
                if (spec.field != k) continue;
                known = true;
                fits = check_feature_type(spec, v, prefix, k).is_ok() && !v.is_null();
                if (!fits) break;
            }
            if (!known) out.ignored.push_back(k);
            if (known && !v.is_null()) out.fallback_only.push_back(k);
            if (fits) out.record.emplace(k, to_raw(v));
            continue;
        }
        if (v.is_null()) continue;  // null is missing: imputed, and listed as such
        out.record.emplace(k, to_raw(v));
    }
    if (out.aggregates && !m.own_aggregates.empty()) {
        if (status s = arm_aggregates(m, *stored, out); !s) return s;
    }
    list_missing(m, out);
    out.features_hash = h;
    return out;
}

// --- the fast reader ---------------------------------------------------------

// A scalar as read from the text; strings point into the body.
struct scalar {
    enum class kind { null, number, string, boolean } type = kind::null;
    double number = 0;
    bool boolean = false;
    std::string_view text;
};

// Whether the document reader would accept this value for the transform
// (scalars only: the fast reader hands objects to the document reader).
bool scalar_fits(ml::transform_kind t, const scalar& v) {
    using k = scalar::kind;
    if (v.type == k::null) return true;
    switch (t) {
        case ml::transform_kind::numeric:
        case ml::transform_kind::log:
        case ml::transform_kind::binarize:
        case ml::transform_kind::bucketize:
        case ml::transform_kind::interval:
            return v.type == k::number;
        case ml::transform_kind::category:
            return true;
        case ml::transform_kind::text:
            return v.type == k::string;
        case ml::transform_kind::boolean:
            return v.type == k::boolean ||
                   (v.type == k::number && (v.number == 0 || v.number == 1));
    }
    return false;
}

// Reads the common shape of a prediction body. Every method returns false
// on anything it does not handle; the caller then gives up.
class fast_reader {
public:
    explicit fast_reader(std::string_view text)
        : p_(text.data()), end_(text.data() + text.size()) {}

    bool at_end() {
        skip_space();
        return p_ == end_;
    }

    bool consume(char c) {
        skip_space();
        if (p_ == end_ || *p_ != c) return false;
        ++p_;
        return true;
    }

    bool peek(char c) {
        skip_space();
        return p_ != end_ && *p_ == c;
    }

    // A string of printable ASCII without escapes (anything else, including
    // what JSON forbids, is left to the document reader).
    bool string(std::string_view& out) {
        if (!consume('"')) return false;
        const char* start = p_;
        while (p_ != end_) {
            const auto c = static_cast<unsigned char>(*p_);
            if (c == '"') {
                out = std::string_view(start, static_cast<std::size_t>(p_ - start));
                ++p_;
                return true;
            }
            if (c == '\\' || c < 0x20 || c >= 0x80) return false;
            ++p_;
        }
        return false;
    }

    // A finite number in JSON's grammar. An integer literal reads as the
    // document's integer converted to double: "-0" is 0.
    bool number(double& out) {
        skip_space();
        const char* start = p_;
        bool integer = true;
        if (p_ != end_ && *p_ == '-') ++p_;
        if (p_ == end_) return false;
        if (*p_ == '0') {
            ++p_;
        } else if (digit()) {
            digits();
        } else {
            return false;
        }
        if (p_ != end_ && *p_ == '.') {
            integer = false;
            ++p_;
            if (!digit()) return false;
            digits();
        }
        if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
            integer = false;
            ++p_;
            if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
            if (!digit()) return false;
            digits();
        }
        auto [ptr, ec] = std::from_chars(start, p_, out);
        if (ec != std::errc() || ptr != p_ || !std::isfinite(out)) return false;  // 1e999, 1e-400
        if (integer && out == 0) out = 0;
        return true;
    }

    bool value(scalar& v) {
        skip_space();
        if (p_ == end_) return false;
        switch (*p_) {
            case '"':
                v.type = scalar::kind::string;
                return string(v.text);
            case 't':
                v.type = scalar::kind::boolean;
                v.boolean = true;
                return word("true");
            case 'f':
                v.type = scalar::kind::boolean;
                v.boolean = false;
                return word("false");
            case 'n':
                v.type = scalar::kind::null;
                return word("null");
            default:
                v.type = scalar::kind::number;
                return number(v.number);
        }
    }

private:
    void skip_space() {
        while (p_ != end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
    }
    bool digit() const { return p_ != end_ && *p_ >= '0' && *p_ <= '9'; }
    void digits() {
        while (digit()) ++p_;
    }
    bool word(std::string_view w) {
        if (static_cast<std::size_t>(end_ - p_) < w.size() || std::string_view(p_, w.size()) != w)
            return false;
        p_ += w.size();
        return true;
    }

    const char* p_;
    const char* end_;
};

struct member {
    std::string_view key;
    scalar value;
};

// Reads {"entity":..., "features":{...}} (and, in the single form,
// "deadline_ms") into `out`.
bool fast_instance(const ml::model_serving& m, fast_reader& r, bool single,
                   std::optional<double>& deadline_ms, predict_instance& out,
                   std::vector<member>& members) {
    if (!r.consume('{') || r.peek('}')) return false;
    bool seen_entity = false, seen_features = false;
    members.clear();
    do {
        std::string_view key;
        if (!r.string(key) || !r.consume(':')) return false;
        if (key == "entity") {
            scalar e;
            if (seen_entity || !r.value(e)) return false;
            if (e.type == scalar::kind::string) {
                // string() refuses control characters: a NUL never gets here.
                if (e.text.empty() || e.text.size() > max_entity_bytes)
                    return false;  // the document reader says why
                out.entity.assign(e.text);
            } else if (e.type != scalar::kind::null) {
                return false;
            }
            seen_entity = true;
        } else if (key == "features") {
            if (seen_features || !r.consume('{')) return false;
            seen_features = true;
            if (r.consume('}')) continue;
            do {
                member mem;
                if (!r.string(mem.key) || !r.consume(':') || !r.value(mem.value)) return false;
                members.push_back(mem);
            } while (r.consume(','));
            if (!r.consume('}')) return false;
        } else if (key == "deadline_ms" && single) {
            double d = 0;
            if (deadline_ms || !r.number(d) || d <= 0 || d > 60000) return false;
            deadline_ms = d;
        } else {
            return false;
        }
    } while (r.consume(','));
    if (!r.consume('}') || !seen_features) return false;

    // In key order, as the document keeps them; a repeated key is left to
    // the document reader, which refuses it naming the field.
    std::sort(members.begin(), members.end(),
              [](const member& a, const member& b) { return a.key < b.key; });
    std::uint64_t h = ml::fnv1a64_offset;
    auto field = m.fields.begin();
    out.record.reserve(std::min(members.size(), m.fields.size()));
    for (std::size_t i = 0; i < members.size(); ++i) {
        const member& mem = members[i];
        if (i && members[i - 1].key == mem.key) return false;
        h = hash_key(h, mem.key);
        switch (mem.value.type) {
            case scalar::kind::number:
                h = hash_number(h, mem.value.number);
                break;
            case scalar::kind::string:
                h = hash_string(h, mem.value.text);
                break;
            case scalar::kind::boolean:
                h = hash_boolean(h, mem.value.boolean);
                break;
            case scalar::kind::null:
                h = hash_null(h);
                break;
        }
        // Both lists are in key order: the fields skipped on the way are missing.
        while (field != m.fields.end() && field->name < mem.key) {
            if (!field->fallback_only) out.missing.push_back(field->name);
            ++field;
        }
        if (field == m.fields.end() || field->name != mem.key) {
            out.ignored.emplace_back(mem.key);
            continue;
        }
        bool fits = true;
        for (unsigned t = 0; t < 32; ++t) {
            if ((field->transforms >> t & 1u) &&
                !scalar_fits(static_cast<ml::transform_kind>(t), mem.value)) {
                fits = false;
            }
        }
        const bool fallback_only = field->fallback_only;
        const std::string& name = (field++)->name;
        if (fallback_only && mem.value.type != scalar::kind::null)
            out.fallback_only.push_back(name);
        if (!fits && !fallback_only) return false;
        // A field only the fallback chain reads is dropped, not refused.
        if (!fits) continue;
        ml::raw_value v;
        switch (mem.value.type) {
            case scalar::kind::null:
                if (!fallback_only) out.missing.push_back(name);  // imputed, and listed as such
                continue;
            case scalar::kind::number:
                v = mem.value.number;
                break;
            case scalar::kind::string:
                v = std::string(mem.value.text);
                break;
            case scalar::kind::boolean:
                v = mem.value.boolean;
                break;
        }
        out.record.emplace(name, std::move(v));
    }
    for (; field != m.fields.end(); ++field) {
        if (!field->fallback_only) out.missing.push_back(field->name);
    }
    out.features_hash = h;
    return true;
}

}  // namespace

result<predict_request> parse_predict_document(const ml::model_serving& m, const std::string& body,
                                               std::optional<std::size_t>& error_instance,
                                               stored_feature_reader* stored) {
    error_instance.reset();
    auto parsed = json_object_of(body);
    if (!parsed) {
        // A value JSON cannot hold (1e999, NaN) names its field and instance.
        error_instance = json_error_instance(body);
        return parsed.error();
    }
    const json& doc = *parsed;
    predict_request out;
    if (auto d = doc.find("deadline_ms"); d != doc.end()) {
        if (!d->is_number() || !std::isfinite(d->get<double>()) || d->get<double>() <= 0 ||
            d->get<double>() > 60000) {
            return invalid("deadline_ms",
                           "must be a number of milliseconds above 0 and at most 60000");
        }
        out.deadline_ms = d->get<double>();
    }
    // Histories are read within the request's deadline.
    if (stored && stored->started) {
        stored->until =
            *stored->started + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                   std::chrono::duration<double, std::milli>(
                                       out.deadline_ms.value_or(m.definition.deadline_ms)));
    }
    if (auto e = doc.find("explain"); e != doc.end()) {
        if (!e->is_boolean()) return invalid("explain", "must be true or false");
        out.explain = e->get<bool>();
    }
    out.batch = doc.contains("instances");
    if (!out.batch) {
        auto inst = document_instance(m, doc, "", stored);
        if (!inst) return inst.error();
        out.instances.push_back(std::move(*inst));
        return out;
    }
    const json& list = doc["instances"];
    if (!list.is_array() || list.empty()) return invalid("instances", "must be a non-empty array");
    if (list.size() > max_predict_instances) {
        return status(error_kind::too_large,
                      "at most " + std::to_string(max_predict_instances) + " instances a request",
                      "instances");
    }
    for (const auto& [k, v] : doc.items()) {
        (void)v;
        // An instance's own fields beside the list: the two forms mixed, not
        // a field this form does not know.
        if (k == "entity" || k == "features") {
            return invalid("instances",
                           "a request is either one instance {\"entity\", \"features\"} or "
                           "{\"instances\": [...]}, not both: \"" +
                               k + "\" goes in each instance");
        }
        if (k != "instances" && k != "deadline_ms" && k != "explain")
            return invalid(k, "unknown field");
    }
    if (out.explain && list.size() > max_explain_instances) {
        return status(error_kind::too_large,
                      "at most " + std::to_string(max_explain_instances) +
                          " instances a request with \"explain\": true (" +
                          std::to_string(list.size()) + " sent)",
                      "instances");
    }
    out.instances.reserve(list.size());
    for (std::size_t i = 0; i < list.size(); ++i) {
        auto inst = document_instance(m, list[i], "instances[" + std::to_string(i) + "]", stored);
        if (!inst) {
            error_instance = i;
            return inst.error();
        }
        out.instances.push_back(std::move(*inst));
    }
    return out;
}

namespace {

// Room for every field and a few unknown ones: growing the list one member
// at a time cost four or five allocations a request.
std::vector<member> member_list(const ml::model_serving& m) {
    std::vector<member> members;
    members.reserve(m.fields.size() + 8);
    return members;
}

bool fast_single(const ml::model_serving& m, fast_reader r, predict_request& out) {
    std::vector<member> members = member_list(m);
    out.instances.emplace_back();
    return fast_instance(m, r, true, out.deadline_ms, out.instances.back(), members) && r.at_end();
}

bool fast_batch(const ml::model_serving& m, fast_reader r, predict_request& out) {
    std::vector<member> members = member_list(m);
    out.batch = true;
    if (!r.consume('{')) return false;
    bool seen_instances = false;
    do {
        std::string_view key;
        if (!r.string(key) || !r.consume(':')) return false;
        if (key == "deadline_ms") {
            double d = 0;
            if (out.deadline_ms || !r.number(d) || d <= 0 || d > 60000) return false;
            out.deadline_ms = d;
        } else if (key == "instances") {
            if (seen_instances || !r.consume('[') || r.peek(']')) return false;
            seen_instances = true;
            std::optional<double> no_deadline;
            do {
                if (out.instances.size() == max_predict_instances) return false;
                out.instances.emplace_back();
                if (!fast_instance(m, r, false, no_deadline, out.instances.back(), members))
                    return false;
            } while (r.consume(','));
            if (!r.consume(']')) return false;
        } else {
            return false;
        }
    } while (r.consume(','));
    return r.consume('}') && r.at_end() && seen_instances;
}

}  // namespace

std::optional<predict_request> parse_predict_fast(const ml::model_serving& m,
                                                  std::string_view body) {
    // The first key tells the forms apart, except "deadline_ms", which both
    // may start with.
    fast_reader probe(body);
    std::string_view first;
    if (!probe.consume('{') || !probe.string(first)) return std::nullopt;
    if (first == "instances" || first == "deadline_ms") {
        predict_request out;
        if (fast_batch(m, fast_reader(body), out)) return out;
        if (first == "instances") return std::nullopt;
    }
    predict_request out;
    if (fast_single(m, fast_reader(body), out)) return out;
    return std::nullopt;
}

void write_stored_source(json_writer& w, const predict_instance::stored_source& s) {
    w.key("stored_features").raw("{");
    w.key("stream").string(s.stream);
    w.key("fact");
    s.fact ? w.integer(*s.fact) : w.null();
    w.key("time");
    s.fact ? w.string(format_rfc3339(s.time)) : w.null();
    w.key("fields").strings(s.fields);
    w.raw("}");
}

result<std::optional<fact>> stored_feature_reader::read(const ml::model_serving& m,
                                                        const std::string& entity) {
    // The definition's declared fields, as training filters: the served
    // specs drop what training dropped and add the arms' (an entity's newest
    // fact holding only a dropped field was passed over for an older one).
    static const std::vector<std::string> none;
    const std::vector<std::string>& fields =
        m.definition.features_from == m.definition.label.stream ? m.declared_fields : none;
    try {
        return fact_as_of(conn(), m.definition.features_from, entity, now_micros(), fields);
    } catch (const std::exception& e) {
        return status(error_kind::unavailable,
                      std::string("reading the entity's stored features failed: ") + e.what());
    }
}

result<std::vector<std::optional<double>>> stored_feature_reader::aggregates(
    const std::vector<ml::aggregate_spec>& specs, const std::string& entity, micros moment) {
    if (cut) return std::vector<std::optional<double>>(specs.size());
    const auto from = std::chrono::steady_clock::now();
    struct timed {
        double& total;
        std::chrono::steady_clock::time_point from;
        ~timed() {
            total += std::chrono::duration<double>(std::chrono::steady_clock::now() - from).count();
        }
    } time_it{read_seconds, from};
    try {
        return ml::entity_aggregates(conn(), specs, entity, moment, until);
    } catch (const ml::aggregate_out_of_time&) {
        cut = true;
        return std::vector<std::optional<double>>(specs.size());
    } catch (const std::exception& e) {
        return status(error_kind::unavailable,
                      std::string("computing the aggregate features failed: ") + e.what());
    }
}

std::vector<ml::aggregate_spec> own_aggregate_specs(const ml::model_serving& m,
                                                    const ml::loaded_version& v) {
    std::vector<ml::aggregate_spec> out;
    for (const auto& a : v.aggregates) {
        const ml::aggregate_spec* served = ml::aggregate_of(m.definition, a.field);
        if (!served || !(*served == a)) out.push_back(a);
    }
    return out;
}

bool computed_for(const std::vector<ml::aggregate_spec>& snapshot, const predict_instance& in,
                  const std::string& field) {
    if (in.entity.empty()) return false;
    if (ml::aggregate_of(snapshot, field)) {
        if (!in.aggregates) return false;
        for (const auto& [f, value] : in.aggregates->values) {
            if (f == field) return true;
        }
        return false;
    }
    return !in.record.count(field);
}

bool needs_own_values(const ml::model_serving& m, const ml::loaded_version& v,
                      const predict_instance& in) {
    if (in.entity.empty() || !m.computes_own_aggregates(v.version) ||
        &in.record_for(v.version) != &in.record)
        return false;
    for (const auto& a : own_aggregate_specs(m, v)) {
        if (computed_for(m.definition.aggregates, in, a.field)) return true;
    }
    return false;
}

result<std::optional<predict_instance::version_values>> read_own_values(
    stored_feature_reader& reader, const std::vector<ml::aggregate_spec>& snapshot,
    const std::vector<ml::aggregate_spec>& specs, std::int64_t version,
    const predict_instance& in) {
    using own = std::optional<predict_instance::version_values>;
    if (!in.aggregates) return own();
    std::vector<ml::aggregate_spec> computed;
    for (const auto& a : specs) {
        if (computed_for(snapshot, in, a.field)) computed.push_back(a);
    }
    if (computed.empty()) return own();
    auto values = reader.aggregates(computed, in.entity, in.aggregates->as_of);
    if (!values) return values.error();
    predict_instance::version_values out{version, in.record, {}};
    for (std::size_t i = 0; i < computed.size(); ++i) {
        out.record.set(computed[i].field, (*values)[i]);
        out.values.emplace_back(computed[i].field, (*values)[i]);
    }
    return own(std::move(out));
}

void write_aggregate_source(json_writer& w, const predict_instance& in,
                            const ml::loaded_version* answering) {
    using values = std::vector<std::pair<std::string, std::optional<double>>>;
    const auto& s = *in.aggregates;
    // The answering version's values (its own where it computes otherwise;
    // a field it does not compute is not its); without one, those read.
    values shown;
    if (!answering) {
        shown = s.values;
    } else {
        const values* own = nullptr;
        for (const auto& o : in.own) {
            if (o.version == answering->version) own = &o.values;
        }
        const auto find = [](const values* list,
                             const std::string& field) -> const values::value_type* {
            if (!list) return nullptr;
            for (const auto& p : *list) {
                if (p.first == field) return &p;
            }
            return nullptr;
        };
        for (const auto& a : answering->aggregates) {
            const auto* p = find(own, a.field);
            if (!p) p = find(&s.values, a.field);
            if (p) shown.push_back(*p);
        }
    }
    if (shown.empty() && s.complete) return;
    w.key("aggregates").raw("{");
    w.key("as_of").string(format_rfc3339(s.as_of));
    w.key("complete").boolean(s.complete);
    w.key("values").raw("{");
    for (const auto& [field, value] : shown) {
        w.key(field);
        value ? w.number(*value) : w.null();
    }
    w.raw("}}");
}

result<predict_request> parse_predict_body(const ml::model_serving& m, const std::string& body,
                                           std::optional<std::size_t>& error_instance,
                                           stored_feature_reader* stored) {
    error_instance.reset();
    // The fast reader reads what was sent; aggregates need the store.
    if (m.definition.aggregates.empty() && m.own_aggregates.empty()) {
        if (auto fast = parse_predict_fast(m, body)) return std::move(*fast);
    }
    return parse_predict_document(m, body, error_instance, stored);
}

void write_prediction(json_writer& w, const ml::answer& a, bool none) {
    const bool regression = a.task == ml::task_kind::regression;
    w.key("prediction");
    if (none) {
        w.null();
    } else if (regression) {
        w.number(a.value);
    } else {
        w.string(a.label);
    }
    if (regression) return;
    w.key("probabilities").raw("{");
    for (std::size_t k = 0; k < a.probabilities.size(); ++k) {
        if (a.classes && k < a.classes->size()) {
            w.key((*a.classes)[k]);
        } else {
            w.key(std::to_string(k));
        }
        w.number(a.probabilities[k]);
    }
    w.raw("}");
    if (a.decision) w.key("decision").boolean(*a.decision);
}

namespace {

void write_raw_value(json_writer& w, const ml::raw_value* v) {
    if (!v) {
        w.null();
    } else if (const auto* d = std::get_if<double>(v)) {
        w.number(*d);
    } else if (const auto* b = std::get_if<bool>(v)) {
        w.boolean(*b);
    } else if (const auto* s = std::get_if<std::string>(v)) {
        w.string(*s);
    } else if (const auto* i = std::get_if<ml::interval>(v)) {
        w.raw("{");
        w.key("lower").number(i->lower);
        w.key("upper").number(i->upper);
        w.raw("}");
    } else {
        w.null();
    }
}

}  // namespace

bool write_explanation(json_writer& w, const ml::loaded_version* answering, const ml::answer& ans,
                       const std::string& source, const predict_instance& in, double seconds,
                       bool first) {
    const auto started = std::chrono::steady_clock::now();
    w.key("explanation").raw("{");
    auto unavailable = [&](const std::string& reason) {
        w.key("available").boolean(false);
        w.key("reason").string(reason);
        w.raw("}");
        return false;
    };
    if (!answering) {
        if (source == "none") return unavailable("there is no answer to explain");
        const char* by = source == "baseline"      ? "the version's baseline"
                         : source == "label_prior" ? "the label's prior"
                                                   : "the definition's serving.fallback";
        return unavailable(std::string("answered by ") + by +
                           ", a constant: it depends on no field");
    }
    auto built = answering->explainer_for();
    if (!built) return unavailable(built.error().message());
    const ml::task_kind task = answering->artifact->task;
    std::optional<std::size_t> class_index;
    if (task == ml::task_kind::binary) class_index = 1;
    if (task == ml::task_kind::multiclass) class_index = static_cast<std::size_t>(ans.value);
    ml::explain_options options;
    options.max_seconds = seconds;
    options.seed = in.features_hash ^ ml::fmix64(static_cast<std::uint64_t>(answering->version));
    // An explanation is given whole or not at all: one cut short (a few
    // background rows, two orders) read as exact or as precise as any.
    const std::string limit = std::to_string(static_cast<int>(explain_request_seconds));
    const std::string out_of_time =
        first ? "explaining this answer takes longer than the " + limit +
                    " s a request has for explanations"
              : "the request's " + limit +
                    " s for explanations ran out before this answer's was done: ask for fewer "
                    "instances at once";
    if (seconds <= 0) return unavailable(out_of_time);
    ml::explanation e;
    try {
        e = (*built)->explain(in.record_for(answering->version), class_index, options);
    } catch (const std::exception& ex) {
        return unavailable(std::string("the model failed while explaining: ") + ex.what());
    }
    if (!e.complete) return unavailable(out_of_time);
    bool finite = std::isfinite(e.base_value) && std::isfinite(e.value);
    for (const auto& c : e.contributions)
        finite = finite && std::isfinite(c.contribution) && std::isfinite(c.error);
    if (!finite) {
        return unavailable(
            "a share or its error is beyond the range of a double (the answer or an input is far "
            "outside the training rows)");
    }
    w.key("available").boolean(true);
    w.key("version").integer(answering->version);
    if (class_index) {
        w.key("output").string("probability");
        const auto& classes = answering->artifact->classes;
        w.key("class").string(*class_index < classes.size() ? classes[*class_index] : "");
    } else {
        w.key("output").string("value");
    }
    w.key("method").string(e.exact ? "exact" : "sampled");
    w.key("base_value").number(e.base_value);
    w.key("value").number(e.value);
    w.key("contributions").raw("[");
    for (std::size_t k = 0; k < e.contributions.size(); ++k) {
        const auto& c = e.contributions[k];
        w.raw(k ? ",{" : "{");
        w.key("field").string(c.field);
        w.key("value");
        const auto& record = in.record_for(answering->version);
        auto it = record.find(c.field);
        write_raw_value(w, it == record.end() ? nullptr : &it->second);
        w.key("contribution").number(c.contribution);
        w.key("error").number(c.error);
        w.raw("}");
    }
    w.raw("]");
    w.key("background_rows").integer(static_cast<std::int64_t>(e.background_rows));
    w.key("samples").integer(static_cast<std::int64_t>(e.samples));
    w.key("evaluations").integer(static_cast<std::int64_t>(e.evaluations));
    w.key("ms").number(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
            .count());
    w.raw("}");
    return true;
}

}  // namespace kennel
