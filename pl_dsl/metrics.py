"""Names and meanings of the per-run metrics; plots and the results table use these names."""

METRICS: dict[str, str] = {
    "f_train_acc": "accuracy of f on its training set D",
    "f_test_acc": "accuracy of f on the clean test set",
    "g_clean_acc": "accuracy of g on clean D with the true labels (the paper's headline)",
    "g_adv_train_acc": "accuracy of g on its own training set (x_adv, y_adv)",
    "g_test_acc": "accuracy of g on the clean test set",
    "agreement": "fraction of test points where sign f = sign g",
    "attack_success": "fraction of n with sign f(x_n + r_n) = y_adv_n",
    "pert_norm_mean": "mean norm of r_n in the attack's norm",
    "pert_norm_max": "largest norm of r_n in the attack's norm",
    "target_mean": "mean target label y_adv (0 for balanced targets)",
    "time_train_f": "seconds spent training f",
    "time_attack": "seconds spent computing the perturbations",
    "time_train_g": "seconds spent training g",
    "time_evaluate": "seconds spent evaluating",
}
