"""The engine: the stage registry, code fingerprints, units and batches, the store, the
Snakemake glue, batch jobs and GPU claiming. It never names a particular stage."""
