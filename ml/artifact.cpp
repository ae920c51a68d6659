#include "ml/artifact.h"

#include <cmath>
#include <exception>
#include <sstream>

#include <dlib/serialize.h>

#include "ml/hash.h"

namespace kennel::ml {
namespace {

// Reads bytes where they lie: an istringstream copies them, and a forest's
// artifact can be 100 MB (serving held it three times over while it loaded
// a version).
class view_buf : public std::streambuf {
public:
    explicit view_buf(std::string_view bytes) {
        // Only read: a streambuf's get area is char*, and there is no put area.
        char* p = const_cast<char*>(bytes.data());
        setg(p, p, p + bytes.size());
    }
};

constexpr std::size_t header_size = 12 + 4 + 8;
constexpr std::size_t trailer_size = 8;

void put_le(std::string& out, std::uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::uint64_t get_le(std::string_view in, std::size_t at, int bytes) {
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) {
        v |= static_cast<std::uint64_t>(static_cast<unsigned char>(in[at + i])) << (8 * i);
    }
    return v;
}

status bad(const std::string& why) {
    return status(error_kind::invalid_argument, "model artifact: " + why, "artifact");
}

void write_params(const train_params& p, std::ostream& out) {
    dlib::serialize(p.c, out);
    dlib::serialize(p.lambda, out);
    dlib::serialize(p.gamma, out);
    dlib::serialize(static_cast<std::uint64_t>(p.num_trees), out);
    dlib::serialize(static_cast<std::uint64_t>(p.min_samples_per_leaf), out);
    dlib::serialize(p.feature_subsampling, out);
    dlib::serialize(static_cast<std::uint64_t>(p.max_kernel_rows), out);
    dlib::serialize(static_cast<std::uint64_t>(p.max_iterations), out);
    dlib::serialize(static_cast<std::uint64_t>(p.threads), out);
}

train_params read_params(std::istream& in) {
    train_params p;
    std::uint64_t v = 0;
    dlib::deserialize(p.c, in);
    dlib::deserialize(p.lambda, in);
    dlib::deserialize(p.gamma, in);
    dlib::deserialize(v, in);
    p.num_trees = v;
    dlib::deserialize(v, in);
    p.min_samples_per_leaf = v;
    dlib::deserialize(p.feature_subsampling, in);
    dlib::deserialize(v, in);
    p.max_kernel_rows = v;
    dlib::deserialize(v, in);
    p.max_iterations = v;
    dlib::deserialize(v, in);
    p.threads = v;
    return p;
}

}  // namespace

std::string serialize_artifact(const model_artifact& a) {
    if (!a.function) return {};
    std::ostringstream payload_stream;
    dlib::serialize(static_cast<std::uint64_t>(a.task), payload_stream);
    a.pipeline.serialize(payload_stream);
    dlib::serialize(a.classes, payload_stream);
    dlib::serialize(std::string(algorithm_name(a.algo)), payload_stream);
    write_params(a.params, payload_stream);
    a.function->serialize(payload_stream);
    const std::string payload = std::move(payload_stream).str();

    std::string out(artifact_type_tag);
    put_le(out, artifact_format_version, 4);
    put_le(out, payload.size(), 8);
    out += payload;
    put_le(out, fnv1a64(payload), 8);
    return out;
}

result<model_artifact> load_artifact(std::string_view bytes, load_use use) {
    if (bytes.size() < artifact_type_tag.size() ||
        bytes.substr(0, artifact_type_tag.size()) != artifact_type_tag) {
        return bad("not a Kennel model (missing the KENNEL-MODEL tag)");
    }
    if (bytes.size() < header_size + trailer_size) return bad("truncated header");
    const auto version = static_cast<std::uint32_t>(get_le(bytes, 12, 4));
    if (version > artifact_format_version) {
        return status(error_kind::failed_precondition,
                      "model artifact: format version " + std::to_string(version) +
                          " is newer than this binary reads (up to " +
                          std::to_string(artifact_format_version) + "); upgrade Kennel to load it",
                      "artifact");
    }
    if (version == 0) return bad("format version 0 is invalid");
    const std::uint64_t length = get_le(bytes, 16, 8);
    if (length != bytes.size() - header_size - trailer_size) {
        return bad("length mismatch: the header says " + std::to_string(length) +
                   " payload bytes, the blob has " +
                   std::to_string(bytes.size() - header_size - trailer_size) +
                   " (truncated or extended)");
    }
    const std::string_view payload = bytes.substr(header_size, length);
    if (fnv1a64(payload) != get_le(bytes, header_size + length, 8)) {
        return bad("checksum mismatch: the payload is damaged");
    }

    try {
        view_buf buf(payload);
        std::istream in(&buf);
        model_artifact a;
        std::uint64_t task = 0;
        dlib::deserialize(task, in);
        if (task > static_cast<std::uint64_t>(task_kind::regression)) return bad("unknown task");
        a.task = static_cast<task_kind>(task);
        auto pipeline = feature_pipeline::deserialize(in);
        if (!pipeline) return pipeline.error();
        a.pipeline = std::move(pipeline).value();
        dlib::deserialize(a.classes, in);
        std::string algo_name;
        dlib::deserialize(algo_name, in);
        auto algo = parse_algorithm(algo_name);
        if (!algo) return bad("unknown algorithm tag '" + algo_name.substr(0, 40) + "'");
        a.algo = *algo;
        a.params = read_params(in);
        auto function = load_function(in, use);
        if (!function) return function.error();
        a.function = std::move(function).value();
        if (in.peek() != std::char_traits<char>::eof()) return bad("trailing bytes in the payload");

        // The parts must describe the same model.
        if (a.function->kind() != a.algo) {
            return bad(std::string("algorithm tag '") + algorithm_name(a.algo) +
                       "' does not match the stored function ('" +
                       algorithm_name(a.function->kind()) + "')");
        }
        if (a.function->task() != a.task) return bad("task does not match the stored function");
        if (a.function->num_features() != a.pipeline.size())
            return bad("feature count of the pipeline and the function differ");
        if (a.function->num_classes() != a.classes.size())
            return bad("class count of the labels and the function differ");
        return a;
    } catch (const dlib::serialization_error& e) {
        return bad(std::string("corrupt payload: ") + e.what());
    } catch (const std::exception& e) {
        return bad(std::string("cannot read payload: ") + e.what());
    }
}

bool not_finite(const prediction& p) {
    if (!std::isfinite(p.value)) return true;
    for (double q : p.probabilities) {
        if (!std::isfinite(q)) return true;
    }
    return false;
}

std::optional<std::size_t> out_of_range_input(const std::vector<double>& x) {
    for (std::size_t i = 0; i < x.size(); ++i) {
        if (!(std::abs(x[i]) <= max_input_scale)) return i;
    }
    return std::nullopt;
}

result<model_prediction> predict_raw(const model_artifact& a, const raw_record& record) {
    if (!a.function) return status(error_kind::internal, "model artifact has no function");
    const std::vector<double> x = a.pipeline.transform(record);
    if (x.size() != a.function->num_features()) {
        return status(error_kind::internal, "feature pipeline and function disagree on width");
    }
    prediction p = a.function->predict(x);
    if (not_finite(p)) {
        // Finite inputs far outside the training data (1e308 where training
        // saw tens) overflow the model's arithmetic: the request's fault, not
        // the version's, so that no client can get a version disabled.
        if (auto i = out_of_range_input(x)) {
            std::ostringstream msg;
            msg << "prediction is not finite: input column \"" << a.pipeline.names()[*i] << "\" is "
                << x[*i] << " in training units, far outside the training data";
            return status(error_kind::invalid_argument, msg.str());
        }
        return status(error_kind::internal, "prediction is not finite");
    }
    model_prediction out;
    out.value = p.value;
    out.probabilities = std::move(p.probabilities);
    if (a.task != task_kind::regression) {
        const auto k = static_cast<std::size_t>(p.value);
        if (!(p.value >= 0) || k >= a.classes.size())
            return status(error_kind::internal, "predicted class index out of range");
        out.label = a.classes[k];
    }
    return out;
}

}  // namespace kennel::ml
