"""How the CLI reports errors: one clear line and a non-zero exit for every user error; never a traceback."""
from __future__ import annotations

import functools
import sys

import typer


class UserError(Exception):
    """An error the user can fix; its message is printed as one line."""


def fail(message: str, code: int = 2):
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(code)


def friendly(fn):
    """Turn the errors users cause (bad files, bad names, bad values) into one line and exit code 2."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except (UserError, ValueError, FileNotFoundError, OSError) as e:
            fail(str(e).splitlines()[0] if str(e) else type(e).__name__)
        except Exception as e:  # anything else from a library: still one line, with its type
            if getattr(sys, "_faceedit_debug", False):
                raise
            fail(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    return wrapper
