#include "ml/definition.h"

namespace kennel::ml {

const aggregate_spec* aggregate_of(const std::vector<aggregate_spec>& specs,
                                   std::string_view field) {
    for (const auto& a : specs) {
        if (a.field == field) return &a;
    }
    return nullptr;
}

bool metric_higher_is_better(const std::string& name) {
    return !(name == "rmse" || name == "mae" || name == "log_loss" || name == "brier" ||
             name == "calibration_error" || name == "decision_false_positive_rate");
}

bool metric_in_unit_interval(const std::string& name) {
    for (const char* m : {"accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "brier",
                          "calibration_error", "decision_precision", "decision_recall",
                          "decision_false_positive_rate"}) {
        if (name == m) return true;
    }
    return false;
}

bool known_metric(task_kind task, const std::string& name) {
    static const char* classification[] = {"accuracy", "precision", "recall", "f1",
                                           "roc_auc",  "pr_auc",    "log_loss"};
    static const char* regression[] = {"rmse", "mae", "r2"};
    if (task == task_kind::regression) {
        for (const char* m : regression) {
            if (name == m) return true;
        }
        return false;
    }
    for (const char* m : classification) {
        if (name == m) return true;
    }
    // The operating point's (ml/decision.h): binary models have one.
    // Binary: the calibration of class 1's probability (ml/metrics.h).
    return task == task_kind::binary &&
           (name == "brier" || name == "calibration_error" || name == "decision_precision" ||
            name == "decision_recall" || name == "decision_false_positive_rate");
}

const char* promotion_mode_name(promotion_mode m) {
    switch (m) {
        case promotion_mode::automatic:
            return "auto";
        case promotion_mode::manual:
            return "manual";
        case promotion_mode::canary:
            return "canary";
    }
    return "auto";
}

}  // namespace kennel::ml
