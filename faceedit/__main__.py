"""`python -m faceedit ...` is the `faceedit` command."""
from faceedit.cli.main import app

app(prog_name="faceedit")
