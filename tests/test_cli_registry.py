"""The command registry: `faceedit WORD` loads only WORD's module, and that module alone serves it."""
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from faceedit.cli import main as cli_main


def top_level_names(app: typer.Typer) -> set[str]:
    names = {c.name for c in app.registered_commands}
    return names | {g.name for g in app.registered_groups}


@pytest.mark.parametrize("module", cli_main.command_modules())
def test_each_module_registers_the_command_it_is_named_after(module):
    app = cli_main.build_app([module])
    assert top_level_names(app) == {module[:-len("_cmd")].replace("_", "-")}


def test_module_for_picks_the_command_word_or_nothing():
    assert cli_main.module_for(["run", "--image", "x.jpg"]) == "run_cmd"
    assert cli_main.module_for(["export-update", "--model", "m"]) == "export_update_cmd"
    assert cli_main.module_for(["--help"]) is None
    assert cli_main.module_for([]) is None
    assert cli_main.module_for(["no-such-command"]) is None


def test_full_app_has_every_command():
    names = top_level_names(cli_main.app)
    assert {"run", "export", "serve", "train", "eval", "bench", "prior"} <= names


def test_console_script_runs_a_command_without_importing_the_others():
    # the command a user types, in a fresh process: backends works, and train's option builder never loaded
    code = ("import sys; from faceedit.cli.main import main\n"
            "try:\n    main(['backends'])\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "assert 'faceedit.cli.train_cmd' not in sys.modules\n"
            "assert 'faceedit.train.config' not in sys.modules\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "openvino" in out.stdout.lower() or "onnxruntime" in out.stdout.lower()


def test_unknown_command_still_gets_clicks_usage_error():
    result = CliRunner().invoke(cli_main.build_app(), ["no-such-command"])
    assert result.exit_code == 2
    assert "No such command" in result.output
