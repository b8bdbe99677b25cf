"""`python -m faceedit ...` is the `faceedit` command."""
from faceedit.cli.main import main

main()
