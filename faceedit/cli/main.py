"""The `faceedit` command. Every command lives in its own small module, faceedit/cli/NAME_cmd.py, with a
register(app) function: this file finds them (a registry, rembg-style), so adding a command is adding a file.
Command modules import their heavy packages inside the command, so `faceedit run` never pays for torch."""
from __future__ import annotations

import importlib
import pkgutil

import typer

from faceedit import __version__

app = typer.Typer(add_completion=False, rich_markup_mode="rich", no_args_is_help=True,
                  help="Infer, reconstruct and edit face attributes with a conditional VAE-GAN.")


def command_modules() -> list[str]:
    import faceedit.cli as package
    return sorted(m.name for m in pkgutil.iter_modules(package.__path__) if m.name.endswith("_cmd"))


def _register():
    for name in command_modules():
        importlib.import_module(f"faceedit.cli.{name}").register(app)


@app.callback(invoke_without_command=True)
def _main(version: bool = typer.Option(False, "--version", help="Print the version and exit.")):
    if version:
        typer.echo(__version__)
        raise typer.Exit()


_register()


if __name__ == "__main__":
    app()
