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

# Computed by the theory stage (see the `theory` section of the schema).
THEORY_METRICS: dict[str, str] = {
    "cos_abs_mean": "mean |cos| between r_n and sum_k Phi(x_n, x_k) y_k x_k (Thm 3.3)",
    "cos_signed_mean": "mean cos between r_n and y_adv_n * sum_k Phi(x_n, x_k) y_k x_k",
    "cos_random": "expected |cos| of a random direction in d dimensions, for scale",
    "fhat_agrees_f": "fraction of test points where sign f-hat = sign f",
    "ghat_agrees_g": "fraction of test points where sign g-hat = sign g",
    "cond_a": "fraction of test points with |f-hat| > margin_f",
    "cond_b": "fraction of test points with |g-hat| > margin_g",
    "cond_c": "fraction of test points with sign f-hat = sign g-hat",
    "cond_all": "fraction of test points where conditions (a), (b) and (c) all hold",
    "agreement_cond_all": "f-g agreement on the test points where all conditions hold (empty if none)",
    "time_theory": "seconds spent computing the theory metrics",
}
ALL_METRICS: dict[str, str] = {**METRICS, **THEORY_METRICS}
