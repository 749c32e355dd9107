"""The science: data sets, the two-layer network and its training, attacks, and the lazy-regime
theory. Pure computation on tensors; knows nothing of files, plans or Snakemake."""
