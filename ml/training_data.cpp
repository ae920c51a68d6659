#include "ml/training_data.h"

#include "ml/raw_json.h"

namespace kennel::ml {

result<training_set> build_training_set(connection& c, const model_definition& d,
                                        std::int64_t watermark) {
    training_set out;
    out.max_fact_id = watermark;
    const std::string label_path = "$.\"" + d.label.field + "\"";
    try {
        // Latest label per entity (by event time, then id), skipping facts
        // that a later fact corrects; then, per label, the latest feature
        // fact at or before the label's event time. Both within the snapshot.
        statement st(c,
                     "WITH labels AS ("
                     "  SELECT l.id, l.entity, l.event_time, l.data,"
                     "         row_number() OVER (PARTITION BY l.entity"
                     "                            ORDER BY l.event_time DESC, l.id DESC) AS rn"
                     "  FROM facts l"
                     "  WHERE l.stream = ?1 AND l.id <= ?3 AND json_type(l.data, ?4) IS NOT NULL"
                     "    AND json_type(l.data, ?4) != 'null'"
                     "    AND NOT EXISTS (SELECT 1 FROM facts c WHERE c.corrects = l.id"
                     "                    AND c.id <= ?3))"
                     " SELECT lb.entity, lb.event_time, lb.id, lb.data,"
                     "  (SELECT f.id FROM facts f"
                     "   WHERE f.stream = ?2 AND f.entity = lb.entity AND f.event_time <= lb.event_time"
                     "     AND f.id <= ?3"
                     "     AND NOT EXISTS (SELECT 1 FROM facts c WHERE c.corrects = f.id AND c.id <= ?3)"
                     "   ORDER BY f.event_time DESC, f.id DESC LIMIT 1) AS fid"
                     " FROM labels lb WHERE lb.rn = 1 ORDER BY lb.entity");
        st.bind(1, d.label.stream).bind(2, d.features_from).bind(3, watermark).bind(4, label_path);
        statement feat(c, "SELECT data FROM facts WHERE id = ?");
        while (st.step()) {
            ++out.labelled_entities;
            if (st.is_null(4)) {
                ++out.without_features;
                continue;
            }
            training_example ex;
            ex.entity = st.column_text(0);
            ex.label_time = st.column_int(1);
            ex.label_fact_id = st.column_int(2);
            ex.label = raw_field_from_json(st.column_text(3), d.label.field);
            ex.feature_fact_id = st.column_int(4);
            feat.reset();
            feat.bind(1, ex.feature_fact_id);
            if (!feat.step()) continue;
            auto rec = raw_record_from_json(feat.column_text(0));
            if (!rec) return rec.error();
            // Only the declared fields: wide facts stay cheap.
            for (const auto& spec : d.features) {
                auto it = rec->find(spec.field);
                if (it != rec->end()) ex.features.emplace(spec.field, it->second);
            }
            out.rows.push_back(std::move(ex));
        }
    } catch (const db_error& e) {
        return status(error_kind::internal, std::string("reading the training set: ") + e.what());
    }
    return out;
}

}  // namespace kennel::ml
