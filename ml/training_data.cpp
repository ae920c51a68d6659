#include "ml/training_data.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <unordered_map>

#include "ml/aggregate.h"
#include "ml/raw_json.h"

namespace kennel::ml {
namespace {

// One fact of a stream as the point-in-time join sees it.
struct fact_ref {
    std::int64_t id = 0;
    std::string entity;
    micros event_time = 0;
    bool has_field = false;  // the label field is present and not null
    // Orders facts at equal times: the id of its chain's first fact (a
    // correction's place), so a newer fact at the same time still wins.
    std::int64_t order_id = 0;
    bool has_feature = true;  // holds a declared feature field (same-stream reads only)
    std::optional<double> value;  // the aggregated field's (aggregate reads only)
};

// The facts of a stream up to the watermark that still stand, each with its
// effective event time (store/facts.h): the newest fact of a chain of
// corrections stands, in the place and at the time of the chain's first
// fact, so a correction sent later neither drops a row nor moves a label's
// moment. A correction past the watermark is not seen.
struct stream_view {
    std::vector<fact_ref> standing;  // with event_time replaced by the effective time
};

// `feature_paths`: when not empty, has_feature says whether a fact holds
// one of them. `value_path`: when not empty, each fact's value there
// (ml/aggregate.h history_value).
stream_view read_stream(connection& c, const std::string& stream, std::int64_t watermark,
                        const std::string& field_path,
                        const std::vector<std::string>& feature_paths = {},
                        const std::string& value_path = "") {
    std::vector<fact_ref> all;
    std::string any_feature = feature_paths.empty() ? "1" : "0";
    for (std::size_t i = 0; i < feature_paths.size(); ++i) {
        any_feature +=
            " OR coalesce(json_type(f.data, ?" + std::to_string(4 + i) + "), 'null') != 'null'";
    }
    const int value_param = static_cast<int>(4 + feature_paths.size());
    statement st(
        c,
        "SELECT f.id, f.entity, coalesce(o.origin_time, f.event_time),"
        " coalesce(o.origin, f.id), coalesce(json_type(f.data, ?3), 'null') != 'null', " +
            any_feature +
            (value_path.empty() ? std::string() : ", " + history_value_sql("f", value_param)) +
            " FROM facts f LEFT JOIN fact_origins o ON o.fact = f.id"
            " WHERE f.stream = ?1 AND f.id <= ?2 ORDER BY f.id");
    st.bind(1, stream).bind(2, watermark).bind(3, field_path.empty() ? "$.__none__" : field_path);
    for (std::size_t i = 0; i < feature_paths.size(); ++i)
        st.bind(static_cast<int>(4 + i), feature_paths[i]);
    if (!value_path.empty()) st.bind(value_param, value_path);
    // In id order, a chain's newest fact so far replaces the one before it.
    std::unordered_map<std::int64_t, std::size_t> chain_end;  // origin -> index in `all`
    std::vector<bool> replaced;
    while (st.step()) {
        fact_ref f;
        f.id = st.column_int(0);
        f.entity = st.column_text(1);
        f.event_time = st.column_int(2);
        f.has_field = st.column_int(4) != 0;
        f.order_id = st.column_int(3);
        f.has_feature = st.column_int(5) != 0;
        if (!value_path.empty()) f.value = history_value(st, 6);
        if (f.order_id != f.id) {
            auto [it, first] = chain_end.try_emplace(f.order_id, all.size());
            if (!first) {
                replaced[it->second] = true;
                it->second = all.size();
            }
        }
        all.push_back(std::move(f));
        replaced.push_back(false);
    }
    stream_view v;
    for (std::size_t i = 0; i < all.size(); ++i) {
        // A chain's first fact is replaced by any correction of it.
        if (replaced[i] || (all[i].order_id == all[i].id && chain_end.count(all[i].id))) continue;
        v.standing.push_back(std::move(all[i]));
    }
    return v;
}

// Each labelled entity's history in an aggregate's stream, sorted
// (ml/aggregate.h), up to the watermark.
using entity_histories = std::unordered_map<std::string, std::vector<history_fact>>;

entity_histories read_histories(connection& c, const aggregate_spec& a, std::int64_t watermark,
                                const std::map<std::string, const fact_ref*>& labelled) {
    entity_histories out;
    // A count of facts reads no value: no fact's JSON is parsed.
    stream_view v =
        read_stream(c, a.stream, watermark, "", {}, a.of.empty() ? "" : "$.\"" + a.of + "\"");
    for (fact_ref& f : v.standing) {
        if (!labelled.count(f.entity)) continue;
        out[f.entity].push_back({f.event_time, f.order_id, f.id, f.value});
    }
    for (auto& [entity, list] : out) sort_history(list);
    return out;
}

}  // namespace

result<training_set> build_training_set(connection& c, const model_definition& d,
                                        std::int64_t watermark,
                                        const std::vector<std::string>& also_keep,
                                        const std::vector<aggregate_spec>& also_aggregate,
                                        const std::optional<label_source>& live_labels) {
    training_set out;
    out.max_fact_id = watermark;
    const std::string label_path = "$.\"" + d.label.field + "\"";
    try {
        // Features from the label's own stream: a fact holding only the
        // label (no declared feature) is not the entity's feature fact, or
        // it would hide the features sent before it.
        const bool same_stream = d.features_from == d.label.stream;
        std::vector<std::string> feature_paths;
        if (same_stream) {
            for (const auto& spec : d.features) {
                // An aggregate is computed, not held by the entity's facts.
                if (!aggregate_of(d, spec.field))
                    feature_paths.push_back("$.\"" + spec.field + "\"");
            }
        }
        stream_view labels = read_stream(c, d.label.stream, watermark, label_path, feature_paths);
        stream_view features =
            same_stream ? labels : read_stream(c, d.features_from, watermark, "");

        // Effective time, then the id of the fact a chain began with, then
        // the fact's own id: two corrections of one fact share the first two,
        // and the later one stands (as in live metrics).
        auto before = [](const fact_ref* a, const fact_ref* b) {
            if (a->event_time != b->event_time) return a->event_time < b->event_time;
            if (a->order_id != b->order_id) return a->order_id < b->order_id;
            return a->id < b->id;
        };
        if (!same_stream) {
            std::int64_t newest_label = 0;
            for (const fact_ref& f : labels.standing) {
                if (f.has_field) newest_label = std::max(newest_label, f.id);
            }
            for (const fact_ref& f : labels.standing) {
                if (f.has_field || f.id < newest_label) continue;
                if (out.facts_after_last_label++ == 0 || f.id < out.first_fact_after_last_label)
                    out.first_fact_after_last_label = f.id;
            }
        }
        // The latest label per entity.
        auto latest_of = [&before](const stream_view& view) {
            std::map<std::string, const fact_ref*> latest;
            for (const fact_ref& f : view.standing) {
                if (!f.has_field) continue;
                const fact_ref*& cur = latest[f.entity];
                if (!cur || before(cur, &f)) cur = &f;
            }
            return latest;
        };
        const std::map<std::string, const fact_ref*> latest_label = latest_of(labels);
        // Each entity's label time as a live version's training read it: its
        // stream and field, its snapshot.
        std::unordered_map<std::string, micros> live_label;
        if (live_labels) {
            const stream_view view = read_stream(c, live_labels->stream, live_labels->max_fact_id,
                                                 "$.\"" + live_labels->field + "\"");
            for (const auto& [entity, f] : latest_of(view))
                live_label.emplace(entity, f->event_time);
        }
        // Feature facts per entity, in the same order.
        std::unordered_map<std::string, std::vector<const fact_ref*>> by_entity;
        for (const fact_ref& f : features.standing) {
            if (f.has_feature && latest_label.count(f.entity)) by_entity[f.entity].push_back(&f);
        }
        for (auto& [entity, list] : by_entity) {
            std::sort(list.begin(), list.end(), before);
        }

        // The live version's aggregates: of a field the definition does not
        // read, computed into every row; computed otherwise (another window,
        // or read from facts), into live's own copy of the row.
        std::vector<aggregate_spec> aggregates = d.aggregates, live_only;
        for (const auto& a : also_aggregate) {
            bool read = false;
            for (const auto& spec : d.features) read = read || spec.field == a.field;
            const aggregate_spec* ours = aggregate_of(d, a.field);
            if (!read)
                aggregates.push_back(a);
            else if (!ours || !(*ours == a))
                live_only.push_back(a);
        }
        // Per aggregate, its stream's histories (read once per stream and field).
        std::map<std::pair<std::string, std::string>, entity_histories> histories;
        for (const auto* list : {&aggregates, &live_only}) {
            for (const auto& a : *list) {
                auto key = std::make_pair(a.stream, a.of);
                if (!histories.count(key))
                    histories.emplace(key, read_histories(c, a, watermark, latest_label));
            }
        }

        statement data(c, "SELECT data FROM facts WHERE id = ?");
        auto read_data = [&data](std::int64_t id) -> std::optional<std::string> {
            data.reset();
            data.bind(1, id);
            if (!data.step()) return std::nullopt;
            return data.column_text(0);
        };
        for (const auto& [entity, label] : latest_label) {
            ++out.labelled_entities;
            // The latest feature fact whose effective time is not after the label's.
            const fact_ref* feature = nullptr;
            auto it = by_entity.find(entity);
            if (it != by_entity.end()) {
                for (const fact_ref* f : it->second) {
                    if (f->event_time > label->event_time) break;
                    feature = f;
                }
            }
            if (!feature) {
                ++out.without_features;
                continue;
            }
            training_example ex;
            ex.entity = entity;
            ex.label_time = label->event_time;
            if (auto lv = live_label.find(entity); lv != live_label.end())
                ex.live_label_time = lv->second;
            ex.label_fact_id = label->id;
            ex.feature_fact_id = feature->id;
            auto label_data = read_data(label->id);
            auto feature_data = read_data(feature->id);
            if (!label_data || !feature_data) continue;
            ex.label = raw_field_from_json(*label_data, d.label.field);
            if (std::holds_alternative<std::monostate>(ex.label)) {
                // Stored, not null, yet unreadable: it was reported as missing.
                std::string why = unreadable_field_reason(*label_data, d.label.field);
                if (!why.empty()) {
                    return invalid("label", "the label \"" + d.label.field + "\" of entity \"" +
                                                entity + "\" (label fact " +
                                                std::to_string(label->id) + ") is " + why +
                                                "; a label is a number, a string, true or "
                                                "false, or {\"lower\", \"upper\"}");
                }
            }
            // A regression label past 1e150 squares past the largest double:
            // no error metric of a model trained on it is finite (the job
            // failed, blaming the first holdout row, whatever its label).
            if (d.task == task_kind::regression) {
                double y = 0;
                if (const auto* x = std::get_if<double>(&ex.label)) y = *x;
                // An interval trains on its midpoint: {-1e308, 1e308} is 0.
                if (const auto* i = std::get_if<interval>(&ex.label)) y = i->midpoint();
                if (std::fabs(y) > max_regression_label) {
                    char shown[32];
                    std::snprintf(shown, sizeof shown, "%g", y);
                    return invalid(
                        "label", "the label \"" + d.label.field + "\" of entity \"" + entity +
                                     "\" (label fact " + std::to_string(label->id) + ") reaches " +
                                     shown +
                                     ", beyond 1e150 either way: its squared error passes "
                                     "the largest double, so no model trained on it can be "
                                     "scored; correct the fact, or send labels in a larger unit");
                }
            }
            // Classes must stay apart: 2^53 + 1 read as a double is 2^53, and
            // two labels became one class without a word.
            if (d.task != task_kind::regression && std::holds_alternative<double>(ex.label) &&
                std::abs(std::get<double>(ex.label)) >= 9007199254740992.0) {
                if (std::string digits = inexact_integer_field(*label_data, d.label.field);
                    !digits.empty()) {
                    return invalid("label", "the label \"" + d.label.field + "\" of entity \"" +
                                                entity + "\" (label fact " +
                                                std::to_string(label->id) + ") is " + digits +
                                                ", an integer beyond 2^53 that a class cannot be "
                                                "told apart from its neighbours by; send such "
                                                "classes as strings");
                }
            }
            std::vector<std::pair<std::string, std::string>> unreadable;
            auto rec = raw_record_from_json(*feature_data, &unreadable);
            if (!rec) return rec.error();
            // Aggregates at the feature fact's moment: what serving computes
            // for a request made then.
            const auto aggregate_at_feature = [&](const aggregate_spec& a) {
                static const std::vector<history_fact> no_history;
                const auto& by = histories.at({a.stream, a.of});
                auto h = by.find(entity);
                return aggregate_over(a, h == by.end() ? no_history : h->second,
                                      feature->event_time);
            };
            for (const auto& a : aggregates) {
                if (auto value = aggregate_at_feature(a)) ex.features.emplace(a.field, *value);
            }
            // Only the declared fields: wide facts stay cheap.
            for (const auto& spec : d.features) {
                if (aggregate_of(d, spec.field)) continue;
                auto f = rec->find(spec.field);
                if (f == rec->end()) continue;
                // Once per field, though two transforms may read it.
                if (!ex.features.emplace(spec.field, f->second)) continue;
                for (const auto& [field, what] : unreadable) {
                    if (field != spec.field) continue;
                    auto& u = out.unreadable[field];
                    if (u.rows++ == 0) u.example = what;
                }
            }
            for (const auto& field : also_keep) {
                if (aggregate_of(aggregates, field)) continue;
                auto f = rec->find(field);
                if (f != rec->end()) ex.features.emplace(field, f->second);
            }
            if (!live_only.empty()) {
                ex.live_features = ex.features;
                for (const auto& a : live_only)
                    ex.live_features->set(a.field, aggregate_at_feature(a));
            }
            out.rows.push_back(std::move(ex));
        }
    } catch (const db_error& e) {
        return status(error_kind::internal, std::string("reading the training set: ") + e.what());
    }
    return out;
}

}  // namespace kennel::ml
