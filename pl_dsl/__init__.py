"""pl-dsl: a declarative experiment language and runner for perturbation learning."""

__version__ = "0.1.0"
