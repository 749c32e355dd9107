"""pl-dsl: a declarative experiment language and runner for perturbation learning.

Sub-packages: `spec` (the language), `science` (the mathematics), `stages` (what each pipeline
stage computes, declared once), `engine` (planning, storing and running units through
Snakemake), `report` (tables and figures).
"""

__version__ = "0.1.0"
