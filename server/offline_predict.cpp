#include "server/offline_predict.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>

#include "ml/serving.h"
#include "server/errors.h"
#include "server/import_export.h"
#include "server/json_body.h"
#include "server/predict_body.h"
#include "store/db.h"
#include "store/json_writer.h"
#include "store/migrations.h"
#include "store/registry.h"

namespace kennel {
namespace {

void write_line_error(std::ostream& out, std::uint64_t line, const status& s,
                      std::optional<std::size_t> instance) {
    std::string text = "{";
    json_writer w(text);
    w.key("line").integer(static_cast<std::int64_t>(line));
    w.key("error").raw(error_object_json(s, instance));
    text += "}\n";
    out << text;
}

}  // namespace

int run_offline_predict(const offline_predict_options& o) {
    const char* me = "kennel predict: ";
    open_options ro;
    ro.read_only = true;
    std::unique_ptr<connection> conn;
    try {
        conn = std::make_unique<connection>(o.db, ro);
    } catch (const db_error& e) {
        std::cerr << me << "cannot open " << o.db << ": " << e.what() << "\n";
        return 1;
    }
    // It only reads, so it cannot migrate: an older schema failed later on
    // a missing column ("no such column: artifact_removed_at").
    const auto pending = pending_migrations(*conn);
    if (!pending) {
        std::cerr << me << pending.error().message() << "\n";
        return 1;
    }
    if (*pending > 0 && static_cast<std::size_t>(*pending) == known_migrations().size()) {
        std::cerr << me << o.db
                  << " has no Kennel schema (an empty database): no model to score with\n";
        return 1;
    }
    if (*pending > 0) {
        std::cerr << me << o.db << " is from an older Kennel (" << *pending
                  << " schema migration(s) pending): run kennel migrate --db " << o.db
                  << " with no server on it, or start kennel serve, which migrates\n";
        return 1;
    }
    // The serving snapshot the server would build: the served versions' fields
    // for reading instances, the live version, and its state.
    ml::serving_registry registry({});
    if (status s = registry.refresh(*conn, o.model); !s) {
        std::cerr << me << s.message() << "\n";
        return 1;
    }
    auto m = registry.get(o.model);
    if (!m) {
        if (auto archive = current_archive(*conn, o.model)) {
            std::cerr << me << archived_note(o.model, *archive) << ": restore it (POST /v1/models/"
                      << o.model << "/restore) to score with it\n";
        } else {
            std::cerr << me << no_model_named(o.model).message() << "\n";
        }
        return 1;
    }
    std::shared_ptr<const ml::loaded_version> v;
    if (o.version) {
        auto loaded = registry.version(*conn, o.model, *o.version);
        if (!loaded) {
            std::cerr << me << "model " << o.model << ": " << loaded.error().message() << "\n";
            return 1;
        }
        v = *loaded;
    } else if (m->live) {
        v = m->live;
    } else {
        std::cerr << me << "model " << o.model << " has no version to serve ("
                  << (m->live_problem.empty() ? "not_trained" : m->live_problem)
                  << "); train it, or name a version with --model-version N\n";
        return 1;
    }

    // Instances are read by the fields of the version that scores them: a
    // named version may read fields the live one does not (or by other
    // transforms), and those must reach it, not be ignored and imputed.
    ml::model_serving scoring;
    scoring.name = m->name;
    scoring.definition = m->definition;
    scoring.revision = m->revision;
    scoring.declared_fields = m->declared_fields;
    scoring.live = v;
    ml::use_served_specs(scoring);

    std::unique_ptr<std::ifstream> in_file;
    std::istream* in = open_cli_input(o.input, in_file, "predict");
    if (!in) return 1;
    cli_output output("predict", o.db);
    std::ostream* out = output.open(o.out);
    if (!out) return 1;

    // "stored_features": true reads the entity's fact as the API does (as
    // of now, on this process's connection).
    struct own_reader final : stored_feature_reader {
        explicit own_reader(connection& db) : c(db) {}
        connection& conn() override { return c; }
        connection& c;
    } stored(*conn);
    std::uint64_t line_no = 0, scored = 0, rejected_lines = 0, failed = 0, out_of_range = 0;
    std::string line;
    while (std::getline(*in, line)) {
        ++line_no;
        if (is_blank(line)) continue;
        std::optional<std::size_t> bad_instance;
        auto parsed = parse_predict_body(scoring, line, bad_instance, &stored);
        if (!parsed) {
            write_line_error(*out, line_no, parsed.error(), bad_instance);
            ++rejected_lines;
            continue;
        }
        bool line_failed = false;
        bool explained_one = false;
        const auto explain_until = explain_deadline();
        for (std::size_t i = 0; i < parsed->instances.size(); ++i) {
            const predict_instance& inst = parsed->instances[i];
            ml::answer a;
            try {
                a = ml::predict_with(*v, inst.record);
            } catch (const ml::input_out_of_range& e) {
                // The input's doing, not the model's: the API answers it from
                // the constant steps of the chain, with this reason.
                write_line_error(*out, line_no,
                                 status(error_kind::invalid_argument,
                                        std::string("input_out_of_range: ") + e.what()),
                                 parsed->batch ? std::optional<std::size_t>(i) : std::nullopt);
                ++out_of_range;
                line_failed = true;
                continue;
            } catch (const std::exception& e) {
                // Not answered by a fallback here: the caller asked for this version.
                write_line_error(
                    *out, line_no,
                    status(error_kind::internal, std::string("model_error: ") + e.what()),
                    parsed->batch ? std::optional<std::size_t>(i) : std::nullopt);
                ++failed;
                line_failed = true;
                continue;
            }
            std::string text = "{";
            json_writer w(text);
            w.key("line").integer(static_cast<std::int64_t>(line_no));
            if (parsed->batch) w.key("instance").integer(static_cast<std::int64_t>(i));
            write_prediction(w, a, false);
            w.key("entity");
            inst.entity.empty() ? w.null() : w.string(inst.entity);
            w.key("model").string(m->name);
            w.key("version").integer(v->version);
            if (!inst.ignored.empty()) w.key("ignored_fields").strings(inst.ignored);
            if (!inst.missing.empty()) w.key("imputed_fields").strings(inst.missing);
            if (inst.stored) write_stored_source(w, *inst.stored);
            if (inst.aggregates) write_aggregate_source(w, inst, v.get());
            const auto unseen = v->artifact->pipeline.unseen_categories(inst.record);
            if (!unseen.empty()) w.key("unseen_categories").strings(unseen);
            // As the API explains (2 s a line shared by its instances).
            if (parsed->explain) {
                const double left =
                    std::chrono::duration<double>(explain_until - std::chrono::steady_clock::now())
                        .count();
                explained_one = write_explanation(w, v.get(), a, "model", inst, std::max(0.0, left),
                                                  !explained_one) ||
                                explained_one;
            }
            text += "}\n";
            *out << text;
            ++scored;
        }
        if (line_failed) ++rejected_lines;
        if (!*out) break;  // said below
    }
    if (in->bad()) {
        // The answers so far are not named as the output (their file is removed).
        std::cerr << me << "reading the input failed after line " << line_no << "\n";
        return 1;
    }
    if (!output.finish("at line " + std::to_string(line_no) + " of the input")) return 1;
    std::fprintf(stderr, "kennel predict: %llu predictions by %s version %lld",
                 static_cast<unsigned long long>(scored), m->name.c_str(),
                 static_cast<long long>(v->version));
    if (rejected_lines) {
        std::fprintf(stderr, "; %llu line(s) rejected (%llu instance(s) the model failed on",
                     static_cast<unsigned long long>(rejected_lines),
                     static_cast<unsigned long long>(failed));
        if (out_of_range) {
            std::fprintf(stderr, ", %llu with inputs out of the model's range",
                         static_cast<unsigned long long>(out_of_range));
        }
        std::fprintf(stderr, ")");
    }
    std::fprintf(stderr, "\n");
    return rejected_lines ? 3 : 0;
}

}  // namespace kennel
