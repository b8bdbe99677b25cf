"""How the CLI reports errors: one clear line and a non-zero exit for every user error; never a traceback."""
from __future__ import annotations

import functools
import sys

import typer


class UserError(Exception):
    """An error the user can fix; its message is printed as one line."""


# An EngineError that concerns one option names it by its API name (EngineError.field); the CLI says its flag.
FLAGS: dict[str, str] = {}  # field -> flag, where it is not "--" + the field with "_" as "-"
HINTS = {  # field -> (the engine's API-neutral hint naming that option, the CLI's wording of it)
    "aligned": ("say so (aligned)", "use --aligned"),
    "detector": ("choose the haar detector", "use --detector haar"),
}


def flag_of(field: str) -> str:
    return FLAGS.get(field, "--" + field.replace("_", "-"))


def one_line(e: BaseException) -> str:
    """An exception as the CLI prints it: its message's first line (or its type); where it concerns an option
    (an EngineError's field), that option's flag: a hint in HINTS reworded, else "--flag: " in front."""
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    field = getattr(e, "field", None)
    if not isinstance(field, str) or not field:
        return text
    neutral, worded = HINTS.get(field, ("", ""))
    if neutral and neutral in text:
        return text.replace(neutral, worded)
    return f"{flag_of(field)}: {text}"


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
            fail(one_line(e))
        except Exception as e:  # anything else from a library: still one line, with its type
            if getattr(sys, "_faceedit_debug", False):
                raise
            fail(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    return wrapper
