"""The outputs: per-run metrics files, the results table, plots and decision-map figures."""
