"""The Snakemake workflow pl-dsl runs (Snakefile, rules/, report/, profiles/), carried inside the
package so that an installed pl-dsl runs specs in any folder; a checkout's top-level Snakefile,
rules/, report/ and profiles/ link here, for `snakemake` run in the checkout."""
