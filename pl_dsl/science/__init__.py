"""The science: data sets, the two-layer network and its training, attacks, and the lazy-regime
theory. Pure computation on tensors; knows nothing of files, plans or Snakemake."""

# The largest block of a kernel (N x M floats) the theory holds at once; torch-free, so that the
# stages' memory estimates can read it while planning.
KERNEL_BLOCK_BYTES = 256 * 2**20
