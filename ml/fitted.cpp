#include "ml/fitted.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>

#include "ml/dlib_io.h"
#include "ml/numeric.h"

namespace kennel::ml {

using namespace detail;

namespace {

double sigmoid(double z) {
    // Two branches so that exp never overflows.
    if (z >= 0) return 1 / (1 + std::exp(-z));
    const double e = std::exp(z);
    return e / (1 + e);
}

status corrupt(const std::string& why) {
    return status(error_kind::invalid_argument, "model function: " + why, "artifact");
}

// A loaded kernel expansion must read exactly num_features values per basis
// vector: Dlib is built without asserts, so a mismatch would read out of bounds.
bool basis_ok(const dlib::decision_function<rbf_kernel>& f, std::size_t num_features) {
    if (f.alpha.size() != f.basis_vectors.size()) return false;
    for (long i = 0; i < f.basis_vectors.size(); ++i) {
        if (f.basis_vectors(i).size() != static_cast<long>(num_features)) return false;
    }
    return std::isfinite(f.kernel_function.gamma);
}

// Every child index must point forward (no cycles) and inside the tree,
// no node may have two parents (a tree, not a graph: flat_forest lays out
// one node per path, and a chain of shared children has 2^depth paths),
// and every split feature must exist.
bool forest_ok(const forest_type& f, std::size_t num_features) {
    if (f.get_num_trees() == 0) return false;
    if (f.get_feature_extractor().max_num_feats() != num_features) return false;
    const auto& trees = f.get_internal_tree_nodes();
    const auto& leaves = f.get_tree_leaves();
    if (trees.size() != leaves.size()) return false;
    std::vector<bool> has_parent;
    for (std::size_t t = 0; t < trees.size(); ++t) {
        const std::size_t nodes = trees[t].size(), total = nodes + leaves[t].size();
        if (leaves[t].empty()) return false;
        has_parent.assign(total, false);
        for (std::size_t i = 0; i < nodes; ++i) {
            const auto& n = trees[t][i];
            if (n.split_feature >= num_features) return false;
            if (n.left <= i || n.right <= i || n.left >= total || n.right >= total) return false;
            if (n.left == n.right || has_parent[n.left] || has_parent[n.right]) return false;
            has_parent[n.left] = has_parent[n.right] = true;
        }
    }
    return true;
}

}  // namespace

namespace detail {

sample_type to_sample(const std::vector<double>& x) {
    sample_type s(static_cast<long>(x.size()));
    for (std::size_t i = 0; i < x.size(); ++i) s(static_cast<long>(i)) = x[i];
    return s;
}

prediction from_class_scores(std::vector<double> scores) {
    double sum = 0;
    for (auto& s : scores) {
        s = std::isfinite(s) ? std::clamp(s, 0.0, 1.0) : 0.0;
        sum += s;
    }
    for (auto& s : scores) s = sum > 0 ? s / sum : 1.0 / static_cast<double>(scores.size());
    prediction p;
    p.value = static_cast<double>(std::max_element(scores.begin(), scores.end()) - scores.begin());
    p.probabilities = std::move(scores);
    return p;
}

prediction baseline_function::do_predict(const std::vector<double>&) const {
    return {value_, probabilities_};
}

void baseline_function::serialize_body(std::ostream& out) const {
    dlib::serialize(value_, out);
    dlib::serialize(probabilities_, out);
}

prediction linear_function::do_predict(const std::vector<double>& x) const {
    // A row's score by a plain loop, in the order the reference BLAS sums:
    // for a handful of dot products, Dlib's call into BLAS and its two
    // temporary matrices cost more than the arithmetic (perf under
    // bench/predict).
    const auto score = [&](long r) {
        double dot = 0;
        for (long j = 0; j < weights_.nc(); ++j)
            dot += weights_(r, j) * x[static_cast<std::size_t>(j)];
        return dot + bias_(r);
    };
    switch (task()) {
        case task_kind::regression:
            return {score(0), {}};
        case task_kind::binary: {
            const double p1 = sigmoid(score(0));
            return {p1 > 0.5 ? 1.0 : 0.0, {1 - p1, p1}};
        }
        case task_kind::multiclass: {
            std::vector<double> p(static_cast<std::size_t>(weights_.nr()));
            for (long k = 0; k < weights_.nr(); ++k) p[static_cast<std::size_t>(k)] = score(k);
            const double m = *std::max_element(p.begin(), p.end());
            double sum = 0;
            for (auto& v : p) sum += v = std::exp(v - m);
            for (auto& v : p) v /= sum;
            const auto best = std::max_element(p.begin(), p.end()) - p.begin();
            return {static_cast<double>(best), std::move(p)};
        }
    }
    return {nan, {}};
}

void linear_function::serialize_body(std::ostream& out) const {
    dlib::serialize(weights_, out);
    dlib::serialize(bias_, out);
}

prediction kernel_function::do_predict(const std::vector<double>& x) const {
    const sample_type s = to_sample(x);
    if (task() == task_kind::regression) return {regression_(s), {}};
    if (task() == task_kind::binary) {
        const double p1 = std::clamp(classifiers_[0](s), 0.0, 1.0);
        return {p1 > 0.5 ? 1.0 : 0.0, {1 - p1, p1}};
    }
    std::vector<double> scores;
    for (const auto& f : classifiers_) scores.push_back(f(s));
    return from_class_scores(std::move(scores));
}

void kernel_function::serialize_body(std::ostream& out) const {
    if (task() == task_kind::regression) {
        dlib::serialize(regression_, out);
    } else {
        dlib::serialize(classifiers_, out);
    }
}

flat_forest::flat_forest(const forest_type& f, layout want) {
    const auto& trees = f.get_internal_tree_nodes();
    const auto& leaves = f.get_tree_leaves();
    std::size_t total = 0;
    for (std::size_t t = 0; t < trees.size(); ++t) total += trees[t].size() + leaves[t].size();
    // Laid out wide first (every forest fits), then packed when it can be:
    // the wide copy is a mapping of its own, returned whole once dropped.
    wide_ = mapped_array<wide_node>(total);
    std::uint32_t laid = 0, max_feature = 0, max_distance = 0;
    struct pending {
        std::uint32_t index;        // in Dlib's tree: nodes, then leaves
        std::int64_t parent_right;  // the node whose right child this one is, or -1
    };
    std::vector<pending> stack;
    for (std::size_t t = 0; t < trees.size(); ++t) {
        const auto& tree = trees[t];
        roots_.push_back(laid);
        stack.assign(1, {0, -1});
        while (!stack.empty()) {
            const pending p = stack.back();
            stack.pop_back();
            // A node reached twice would be laid out twice, past the end
            // (load_function refuses such forests first; this guards the rest).
            if (laid == total) throw std::invalid_argument("forest: a node has two parents");
            const std::uint32_t me = laid++;
            if (p.parent_right >= 0) {
                const auto parent = static_cast<std::uint32_t>(p.parent_right);
                wide_[parent].distance = me - parent;
                max_distance = std::max(max_distance, me - parent);
            }
            if (p.index >= tree.size()) {
                wide_[me] = {leaves[t][p.index - tree.size()], 0, 0};
                continue;
            }
            const auto& n = tree[p.index];
            const auto feature = static_cast<std::uint32_t>(n.split_feature);
            max_feature = std::max(max_feature, feature);
            wide_[me] = {n.split_threshold, feature, 0};
            stack.push_back({n.right, me});
            stack.push_back({n.left, -1});  // next: right after its parent
        }
    }
    while (feature_bits_ < 32 && (std::uint64_t{1} << feature_bits_) <= max_feature)
        ++feature_bits_;
    if (want == layout::wide || (std::uint64_t{max_distance} << feature_bits_) > 0xffffffffu)
        return;
    compact_ = mapped_array<compact_node>(laid);
    for (std::uint32_t i = 0; i < laid; ++i)
        compact_[i] = {wide_[i].threshold, wide_[i].distance << feature_bits_ | wide_[i].feature};
    wide_ = {};
}

double flat_forest::operator()(const std::vector<double>& x) const {
    if (!wide_.size()) {
        const unsigned shift = feature_bits_;
        const std::uint32_t mask = static_cast<std::uint32_t>((std::uint64_t{1} << shift) - 1);
        return walk(compact_.data(), x, [shift, mask](const compact_node& n) {
            return std::pair<std::uint32_t, std::uint32_t>{n.bits >> shift, n.bits & mask};
        });
    }
    return walk(wide_.data(), x, [](const wide_node& n) {
        return std::pair<std::uint32_t, std::uint32_t>{n.distance, n.feature};
    });
}

template <class Node, class Decode>
double flat_forest::walk(const Node* nodes, const std::vector<double>& x, Decode decode) const {
    // Sixteen walks at a time; a walk that reaches its leaf takes the next
    // tree. Each walk's next node is prefetched as soon as it is known, so
    // its load is under way while the other walks step: the forest does not
    // fit in cache (bench/predict's: 100 trees, 704k nodes, 5.6 MB), and
    // without the prefetch a load began only when its walk's turn came.
    // bench/forest (best of five, 2026-12-04): with 12-byte nodes 4.8 us a
    // prediction warm and 27-31 us cold, against 5.7 and 32-35 without the
    // prefetch; 8 walks were slower, 32 no faster than 16. With 8-byte
    // nodes on huge pages, 3.7-4.1 and 21-22. Walking a batch's inputs
    // together, tree by tree, was no faster (bench/forest, 2026-12-05, 32
    // inputs: 0.97x warm, 0.99x cold): the time goes to each input's deep
    // nodes, which no other input shares.
    constexpr std::size_t lanes = 16;
    const std::size_t n = roots_.size();
    std::vector<float> found(n);
    std::uint32_t at[lanes], tree[lanes];
    std::size_t next = 0, active = 0;
    for (; active < lanes && next < n; ++active, ++next) {
        tree[active] = static_cast<std::uint32_t>(next);
        at[active] = roots_[next];
    }
    while (active > 0) {
        for (std::size_t l = 0; l < active; ++l) {
            const Node& nd = nodes[at[l]];
            const auto [distance, feature] = decode(nd);
            if (distance == 0) {  // a leaf
                found[tree[l]] = nd.threshold;
                if (next < n) {
                    tree[l] = static_cast<std::uint32_t>(next);
                    at[l] = roots_[next++];
                    __builtin_prefetch(&nodes[at[l]]);
                } else {
                    --active;
                    tree[l] = tree[active];
                    at[l] = at[active];
                    --l;  // the lane now holds another walk
                }
                continue;
            }
            // Without a branch: which way a walk goes is unpredictable.
            const std::uint32_t go_right = !(x[feature] < nd.threshold);
            at[l] += 1 + ((distance - 1) & (0u - go_right));
            __builtin_prefetch(&nodes[at[l]]);
        }
    }
    double sum = 0;  // in tree order, as Dlib sums
    for (float v : found) sum += v;
    return sum / static_cast<double>(n);
}

forest_function::forest_function(task_kind task, std::size_t num_features, std::size_t num_classes,
                                 std::vector<forest_type> forests, bool keep_forests)
    : fitted_function(task, num_features, num_classes), forests_(std::move(forests)) {
    for (const auto& f : forests_) flat_.emplace_back(f);
    if (!keep_forests) std::vector<forest_type>().swap(forests_);
}

prediction forest_function::do_predict(const std::vector<double>& x) const {
    if (task() == task_kind::regression) return {flat_[0](x), {}};
    if (task() == task_kind::binary) {
        const double p1 = std::clamp(flat_[0](x), 0.0, 1.0);
        return {p1 > 0.5 ? 1.0 : 0.0, {1 - p1, p1}};
    }
    std::vector<double> scores;
    for (const auto& f : flat_) scores.push_back(f(x));
    return from_class_scores(std::move(scores));
}

void forest_function::serialize_body(std::ostream& out) const {
    if (forests_.size() != flat_.size())
        throw std::logic_error("a forest loaded to predict only cannot be serialized");
    dlib::serialize(forests_, out);
}

prediction calibrated_function::do_predict(const std::vector<double>& x) const {
    prediction p = inner_->predict(x);
    if (p.probabilities.size() != 2) return p;
    const double p1 = calibrator_(p.probabilities[1]);
    return {p1 > 0.5 ? 1.0 : 0.0, {1 - p1, p1}};
}

void calibrated_function::serialize_body(std::ostream& out) const {
    write_u64(static_cast<std::uint64_t>(calibrator_.method), out);
    write_u64(static_cast<std::uint64_t>(calibrator_.input), out);
    dlib::serialize(calibrator_.a, out);
    dlib::serialize(calibrator_.b, out);
    dlib::serialize(calibrator_.xs, out);
    dlib::serialize(calibrator_.ys, out);
    inner_->serialize(out);
}

}  // namespace detail

function_ptr calibrate(function_ptr inner, calibrator c) {
    return std::make_shared<calibrated_function>(std::move(inner), std::move(c));
}

prediction fitted_function::predict(const std::vector<double>& x) const {
    if (x.size() != num_features_) return {nan, {}};
    return do_predict(x);
}

void fitted_function::serialize(std::ostream& out) const {
    dlib::serialize(std::string(tag()), out);
    write_u64(static_cast<std::uint64_t>(task_), out);
    write_u64(num_features_, out);
    write_u64(num_classes_, out);
    serialize_body(out);
}

result<function_ptr> load_function(std::istream& in, load_use use) {
    try {
        std::string tag;
        dlib::deserialize(tag, in);
        const std::uint64_t task_code = read_u64(in);
        if (task_code > static_cast<std::uint64_t>(task_kind::regression))
            return corrupt("unknown task code");
        const auto task = static_cast<task_kind>(task_code);
        const std::uint64_t nf = read_u64(in);
        const std::uint64_t nc = read_u64(in);
        if (nf == 0 || nf > (1u << 24)) return corrupt("implausible feature count");
        const bool shape_ok = task == task_kind::regression ? nc == 0
                              : task == task_kind::binary   ? nc == 2
                                                            : (nc >= 2 && nc <= 100000);
        if (!shape_ok) return corrupt("class count does not match the task");
        const std::size_t outputs = task == task_kind::multiclass ? nc : 1;

        if (tag == "baseline") {
            double value = 0;
            std::vector<double> probabilities;
            dlib::deserialize(value, in);
            dlib::deserialize(probabilities, in);
            if (probabilities.size() != nc) return corrupt("baseline has the wrong class count");
            return function_ptr(
                std::make_shared<baseline_function>(task, nf, value, std::move(probabilities)));
        }
        if (tag == "linear") {
            dlib::matrix<double> weights;
            sample_type bias;
            dlib::deserialize(weights, in);
            dlib::deserialize(bias, in);
            if (weights.nr() != static_cast<long>(outputs) ||
                weights.nc() != static_cast<long>(nf) || bias.size() != static_cast<long>(outputs))
                return corrupt("linear weights have the wrong shape");
            return function_ptr(std::make_shared<linear_function>(task, nf, nc, std::move(weights),
                                                                  std::move(bias)));
        }
        if (tag == "kernel") {
            if (task == task_kind::regression) {
                dlib::decision_function<rbf_kernel> f;
                dlib::deserialize(f, in);
                if (!basis_ok(f, nf)) return corrupt("kernel expansion has the wrong shape");
                return function_ptr(std::make_shared<kernel_function>(task, nf, std::move(f)));
            }
            std::vector<dlib::probabilistic_decision_function<rbf_kernel>> fs;
            dlib::deserialize(fs, in);
            if (fs.size() != outputs) return corrupt("kernel has the wrong number of classifiers");
            for (const auto& f : fs) {
                if (!basis_ok(f.decision_funct, nf))
                    return corrupt("kernel expansion has the wrong shape");
            }
            return function_ptr(std::make_shared<kernel_function>(task, nf, nc, std::move(fs)));
        }
        if (tag == "forest") {
            std::vector<forest_type> forests;
            dlib::deserialize(forests, in);
            if (forests.size() != outputs) return corrupt("wrong number of forests");
            for (const auto& f : forests) {
                if (!forest_ok(f, nf)) return corrupt("forest structure is invalid");
            }
            return function_ptr(std::make_shared<forest_function>(task, nf, nc, std::move(forests),
                                                                  use != load_use::predict));
        }
        if (tag == "calibrated") {
            if (task != task_kind::binary) return corrupt("calibration of a non-binary function");
            calibrator c;
            const std::uint64_t method = read_u64(in);
            if (method != static_cast<std::uint64_t>(calibration_method::sigmoid) &&
                method != static_cast<std::uint64_t>(calibration_method::isotonic))
                return corrupt("unknown calibration method");
            c.method = static_cast<calibration_method>(method);
            const std::uint64_t input = read_u64(in);
            if (input > static_cast<std::uint64_t>(sigmoid_input::probability))
                return corrupt("unknown calibration input");
            c.input = static_cast<sigmoid_input>(input);
            dlib::deserialize(c.a, in);
            dlib::deserialize(c.b, in);
            dlib::deserialize(c.xs, in);
            dlib::deserialize(c.ys, in);
            bool points_ok = c.xs.size() == c.ys.size() &&
                             (c.method == calibration_method::sigmoid || !c.xs.empty());
            for (std::size_t i = 0; points_ok && i < c.xs.size(); ++i) {
                points_ok = std::isfinite(c.xs[i]) && c.ys[i] >= 0 && c.ys[i] <= 1 &&
                            (i == 0 || (c.xs[i] > c.xs[i - 1] && c.ys[i] >= c.ys[i - 1]));
            }
            if (!points_ok || !std::isfinite(c.a) || !std::isfinite(c.b))
                return corrupt("calibration is invalid");
            auto inner = load_function(in, use);
            if (!inner) return inner.error();
            if ((*inner)->calibration() || (*inner)->task() != task ||
                (*inner)->num_features() != nf || (*inner)->num_classes() != nc)
                return corrupt("calibrated function does not match its calibration");
            return function_ptr(std::make_shared<calibrated_function>(*inner, std::move(c)));
        }
        return corrupt("unknown function tag '" + tag.substr(0, 40) + "'");
    } catch (const dlib::serialization_error& e) {
        return corrupt(std::string("corrupt data: ") + e.what());
    } catch (const std::exception& e) {
        return corrupt(std::string("cannot read: ") + e.what());
    }
}

}  // namespace kennel::ml
