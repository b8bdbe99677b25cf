"""The `faceedit` command. Every command lives in its own small module, faceedit/cli/NAME_cmd.py, with a
register(app) function: this file finds them (a registry, rembg-style), so adding a command is adding a file.
Command modules import their heavy packages inside the command, so `faceedit run` never pays for torch.

`main()` (the console script) registers only the module of the command typed when it can tell which one that
is (`faceedit run ...` imports run_cmd alone: a cold run does not pay for building every other command's
options); `faceedit --help`, an unknown word, or importing `app` builds the whole command set."""
from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

from faceedit import __version__


def command_modules() -> list[str]:
    import faceedit.cli as package
    return sorted(m.name for m in pkgutil.iter_modules(package.__path__) if m.name.endswith("_cmd"))


def module_for(argv: list[str]) -> str | None:
    """The one command module that serves `faceedit ARGV`, or None (no command word, or one no module is
    named after). Each NAME_cmd module registers the command NAME (underscores as dashes) and nothing else at
    the top level; tests/test_cli_registry.py holds every module to that."""
    word = next((a for a in argv if not a.startswith("-")), None)
    if word is None:
        return None
    name = word.replace("-", "_") + "_cmd"
    return name if name in command_modules() else None


def build_app(modules: list[str] | None = None) -> typer.Typer:
    new = typer.Typer(add_completion=False, rich_markup_mode="rich", no_args_is_help=True,
                      help="Infer, reconstruct and edit face attributes with a conditional VAE-GAN.")

    @new.callback(invoke_without_command=True)
    def _main(version: bool = typer.Option(False, "--version", help="Print the version and exit.")):
        if version:
            typer.echo(__version__)
            raise typer.Exit()

    for name in command_modules() if modules is None else modules:
        importlib.import_module(f"faceedit.cli.{name}").register(new)
    return new


_full_app: typer.Typer | None = None


def __getattr__(name: str):
    # `from faceedit.cli.main import app`: every command, built on first use (PEP 562)
    global _full_app
    if name == "app":
        if _full_app is None:
            _full_app = build_app()
        return _full_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: list[str] | None = None):
    argv = sys.argv[1:] if argv is None else argv
    only = module_for(argv)
    return build_app([only] if only else None)(args=argv, prog_name="faceedit")


if __name__ == "__main__":
    main()
