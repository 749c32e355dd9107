"""`python -m pl_dsl` is the `pl-dsl` command."""

from pl_dsl.cli import main

main()
