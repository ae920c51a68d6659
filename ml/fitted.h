// The concrete fitted functions behind ml/trainers.h (internal to ml/: only
// trainers.cpp and fitted.cpp include it, so Dlib's headers stay out of every
// other translation unit).
//
// Each type is immutable after construction and its predict is read-only, so
// one instance may serve many threads at once (see the note in trainers.h on
// which Dlib objects allow that).
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <new>
#include <utility>
#include <vector>

#include <dlib/matrix.h>
#include <dlib/random_forest.h>
#include <dlib/svm.h>

#include "ml/calibration.h"
#include "ml/trainers.h"

namespace kennel::ml::detail {

using sample_type = dlib::matrix<double, 0, 1>;
using rbf_kernel = dlib::radial_basis_kernel<sample_type>;
using forest_type = dlib::random_forest_regression_function<dlib::dense_feature_extractor>;

sample_type to_sample(const std::vector<double>& x);

// Majority class with the class prior, or the mean.
class baseline_function final : public fitted_function {
  public:
    baseline_function(task_kind task, std::size_t num_features, double value,
                      std::vector<double> probabilities)
        : fitted_function(task, num_features, probabilities.size()),
          value_(value),
          probabilities_(std::move(probabilities)) {}
    algorithm kind() const override { return algorithm::baseline; }

  private:
    const char* tag() const override { return "baseline"; }
    prediction do_predict(const std::vector<double>& x) const override;
    void serialize_body(std::ostream& out) const override;

    double value_;
    std::vector<double> probabilities_;
};

// Linear scores: binary logistic (one row of weights), softmax (one row per
// class) or ridge regression (one row, identity link).
class linear_function final : public fitted_function {
  public:
    // weights: one row per output, num_features columns; bias: one per row.
    linear_function(task_kind task, std::size_t num_features, std::size_t num_classes,
                    dlib::matrix<double> weights, sample_type bias)
        : fitted_function(task, num_features, num_classes),
          weights_(std::move(weights)),
          bias_(std::move(bias)) {}
    algorithm kind() const override { return algorithm::linear; }

  private:
    const char* tag() const override { return "linear"; }
    prediction do_predict(const std::vector<double>& x) const override;
    void serialize_body(std::ostream& out) const override;

    dlib::matrix<double> weights_;
    sample_type bias_;
};

// RBF kernel: kernel ridge regression, or Platt-scaled SVMs (one for binary,
// one-vs-rest per class for multiclass, probabilities normalised).
class kernel_function final : public fitted_function {
  public:
    kernel_function(task_kind task, std::size_t num_features, dlib::decision_function<rbf_kernel> f)
        : fitted_function(task, num_features, 0), regression_(std::move(f)) {}
    kernel_function(task_kind task, std::size_t num_features, std::size_t num_classes,
                    std::vector<dlib::probabilistic_decision_function<rbf_kernel>> fs)
        : fitted_function(task, num_features, num_classes), classifiers_(std::move(fs)) {}
    algorithm kind() const override { return algorithm::kernel; }

  private:
    const char* tag() const override { return "kernel"; }
    prediction do_predict(const std::vector<double>& x) const override;
    void serialize_body(std::ostream& out) const override;

    dlib::decision_function<rbf_kernel> regression_;
    std::vector<dlib::probabilistic_decision_function<rbf_kernel>> classifiers_;
};

// A fixed-size array in its own anonymous memory mapping, zeroed, not in
// the heap. A served forest is megabytes, allocated while the artifact and
// Dlib's trees it is built from lie in the heap below it: in the heap it
// kept their freed pages from being returned (bench/predict's server was
// 10 MB larger), and a version unloaded later left a hole there.
template <class T>
class mapped_array {
public:
    mapped_array() = default;
    explicit mapped_array(std::size_t n) : size_(n) {
        if (n == 0) return;
        const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
        constexpr std::size_t huge = std::size_t{2} << 20;
        // A count whose bytes (rounded up, plus the padding below) overflow
        // would map a wrapped-around size: refuse it as mmap refuses too much.
        if (n > (SIZE_MAX - page - huge) / sizeof(T)) throw std::bad_alloc();
        const std::size_t bytes = (n * sizeof(T) + page - 1) / page * page;
        // Huge pages where the kernel allows them (transparent huge pages,
        // "madvise" mode on Debian): walks jump all over the array, and with
        // 4 KiB pages most jumps also missed the TLB (bench/forest, cold: 23
        // us a prediction against 30). They need a 2 MiB boundary, so a
        // larger mapping is made and trimmed to one that starts on one.
        const bool big = bytes >= huge;
        const std::size_t padded = big ? bytes + huge : bytes;
        void* p =
            ::mmap(nullptr, padded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) throw std::bad_alloc();
        auto start = reinterpret_cast<std::uintptr_t>(p);
        if (big) {
            const std::uintptr_t aligned = (start + huge - 1) & ~(std::uintptr_t{huge} - 1);
            const std::size_t head = aligned - start, tail = padded - head - bytes;
            if (head) ::munmap(p, head);
            if (tail) ::munmap(reinterpret_cast<void*>(aligned + bytes), tail);
            ::madvise(reinterpret_cast<void*>(aligned), bytes, MADV_HUGEPAGE);
            start = aligned;
        }
        data_ = reinterpret_cast<T*>(start);
        bytes_ = bytes;
    }
    mapped_array(mapped_array&& o) noexcept
        : data_(std::exchange(o.data_, nullptr)),
          size_(std::exchange(o.size_, 0)),
          bytes_(std::exchange(o.bytes_, 0)) {}
    mapped_array& operator=(mapped_array&& o) noexcept {
        if (this != &o) {
            release();
            data_ = std::exchange(o.data_, nullptr);
            size_ = std::exchange(o.size_, 0);
            bytes_ = std::exchange(o.bytes_, 0);
        }
        return *this;
    }
    mapped_array(const mapped_array&) = delete;
    mapped_array& operator=(const mapped_array&) = delete;
    ~mapped_array() { release(); }

    std::size_t size() const { return size_; }
    T* data() { return data_; }
    const T* data() const { return data_; }
    T& operator[](std::size_t i) { return data_[i]; }
    const T& operator[](std::size_t i) const { return data_[i]; }

private:
    void release() {
        if (data_) ::munmap(data_, bytes_);
        data_ = nullptr;
        size_ = 0;
        bytes_ = 0;
    }
    T* data_ = nullptr;
    std::size_t size_ = 0;
    std::size_t bytes_ = 0;  // mapped: size_ elements rounded up to whole pages
};

// A Dlib forest's trees laid out for prediction: every tree's nodes depth
// first in one array (a node's left child is the next node; it holds the
// distance to its right child), and several trees walked side by side so
// their memory loads overlap. A node takes 8 bytes when its feature index
// and that distance fit in 32 bits together (bench/predict's forest: 4 and
// 13 bits), else 12. The forest rarely fits in cache, so fewer bytes a node
// is fewer cache lines a walk: with 8 bytes and huge pages, bench/forest
// measured 3.7-4.1 us a prediction warm and 21-22 cold, against 4.7-4.9
// and 30 with 12 bytes. Gives exactly what Dlib's forest gives (same
// comparisons, leaves summed in tree order); Dlib's own layout stays the
// stored one.
class flat_forest {
public:
    enum class layout { compact, wide };  // compact: 8 bytes a node where it fits

    explicit flat_forest(const forest_type& f, layout want = layout::compact);
    double operator()(const std::vector<double>& x) const;
    layout used() const { return wide_.size() ? layout::wide : layout::compact; }

private:
    // In both, a leaf has distance 0 and its value in place of the threshold.
    struct compact_node {
        float threshold;     // go left when x[feature] < threshold
        std::uint32_t bits;  // distance << feature_bits_ | feature
    };
    struct wide_node {
        float threshold;
        std::uint32_t feature;
        std::uint32_t distance;  // to the right child
    };
    template <class Node, class Decode>
    double walk(const Node* nodes, const std::vector<double>& x, Decode decode) const;

    mapped_array<compact_node> compact_;
    mapped_array<wide_node> wide_;  // used when the compact form does not fit
    unsigned feature_bits_ = 0;
    std::vector<std::uint32_t> roots_;
};

// Regression forests: one for regression, one on the 0/1 label for binary
// (its output clipped to [0,1] is P(class 1)), one per class on the class
// indicator for multiclass (normalised).
class forest_function final : public fitted_function {
  public:
      // keep_forests: false when loaded to predict only (Dlib's trees are
      // dropped once flattened; serialize then throws).
      forest_function(task_kind task, std::size_t num_features, std::size_t num_classes,
                      std::vector<forest_type> forests, bool keep_forests = true);
      algorithm kind() const override { return algorithm::forest; }

  private:
    const char* tag() const override { return "forest"; }
    prediction do_predict(const std::vector<double>& x) const override;
    void serialize_body(std::ostream& out) const override;

    std::vector<forest_type> forests_;  // empty when loaded to predict only
    std::vector<flat_forest> flat_;     // one per forest, for prediction
};

// A binary function whose probability of class 1 goes through a calibrator
// (ml/calibration.h). Its kind is the inner function's: the algorithm that
// was trained; serialized as the calibrator, then the inner function whole.
class calibrated_function final : public fitted_function {
public:
    calibrated_function(function_ptr inner, calibrator c)
        : fitted_function(inner->task(), inner->num_features(), inner->num_classes()),
          inner_(std::move(inner)),
          calibrator_(std::move(c)) {}
    algorithm kind() const override { return inner_->kind(); }
    const calibrator* calibration() const override { return &calibrator_; }
    const fitted_function* uncalibrated() const override { return inner_.get(); }

private:
    const char* tag() const override { return "calibrated"; }
    prediction do_predict(const std::vector<double>& x) const override;
    void serialize_body(std::ostream& out) const override;

    function_ptr inner_;
    calibrator calibrator_;
};

// Turns per-class scores in [0,1] into probabilities summing to 1 (uniform
// when all are 0) and fills the argmax.
prediction from_class_scores(std::vector<double> scores);

}  // namespace kennel::ml::detail
