"""Recipes: how a model is made, every stage of it, in one TOML file that one command runs again (issue 28).

    format = "faceedit-recipe-1"
    name = "tiny"

    [[stage]]
    name = "judge"                # the stage's folder: RUN/judge (RUN: `faceedit train recipe ... --out RUN`)
    kind = "judge"                # judge | guide | from-model | train | export | export-update | export-judge
    data = "synth"                # a data name: DATA_ROOT/synth (--data-root), or --dataset synth=FOLDER
    steps = 4

    [[stage]]
    name = "base"
    kind = "train"                # every other key is a TrainConfig field (config.py), as `faceedit train` takes it
    data = ["synth"]
    judge = "stage:judge"         # what an earlier stage made (here RUN/judge/judge.pt)
    steps = 4

    [[stage]]
    name = "finetune"
    kind = "train"
    start = "stage:base"          # (train only) the checkpoint the run starts from, copied in as its last.pt
    data = ["synth"]
    steps = 6                     # the run's total, as --steps is
    output = "step_0000006.pt"    # (train only) what the stage hands on; default last.pt

A value "stage:NAME" is stage NAME's product (a judge's or guide's .pt, a train or from-model stage's
checkpoint, an export's model directory, an export-judge's judge set); "stage:NAME/PATH" is PATH inside
NAME's folder (e.g. "stage:base/best.pt"). Any other path is taken as the command line would take it. Data
are names, never folders, so a recipe runs on any machine: `--data-root ../shared` or `--dataset NAME=FOLDER`.

Each stage runs in RUN/NAME through the very functions its command calls, and writes RUN/NAME/stage.json
when it has finished (its options, product, commands and times): a re-run skips what finished and resumes
a train stage that was cut off from its last.pt. `--dry-run` prints the equivalent commands.

This module is the training room's part (parse, check, run; the judge, guide, from-model and train
kinds). The export room adds `export`, `export-update` and `export-judge` (faceedit.export.recipe_stages);
the command (faceedit/cli/train_recipe.py) runs with all of them.
"""
from __future__ import annotations

import json
import re
import shlex
import shutil
import time
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

from faceedit.core.files import atomic_path, atomic_write_text
from faceedit.train.config import TrainConfig

FORMAT = "faceedit-recipe-1"
STAGE_RECORD = "stage.json"
STAGE_FORMAT = "faceedit-recipe-stage-1"
STAGE_REF = "stage:"
JUDGE_ARCHS = ("judge", "reporting")  # faceedit.train.judge.ARCHS (importing it needs torch)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

# the types of a stage's keys
INT, FLOAT, BOOL, STR, NAMES = "an integer", "a number", "true or false", "a string", "a list of strings"
DATA = "a data name"                 # one data set: DATA_ROOT/NAME or --dataset NAME=FOLDER
DATA_LIST = "a list of data names"   # a single name is taken as a list of one
REF = "a stage:NAME reference or a path"
TABLE = "a table of NAME = number"
FILE_NAME = "a file name"


class RecipeError(ValueError):
    """A recipe that cannot run as written; one line that names the file, the stage and the key."""


@dataclass
class Stage:
    name: str
    kind: str
    options: dict  # the stage's table as written, less name and kind (keys with underscores)
    index: int


@dataclass
class Recipe:
    path: Path
    name: str
    description: str
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise RecipeError(f"{self.path.name}: no stage named '{name}' (stages: {', '.join(s.name for s in self.stages)})")


@dataclass(frozen=True)
class StageKind:
    """What a kind of stage takes, makes, and how it runs.

    keys: key -> its type (above); required: keys it must have; product: the file or folder in its stage
    folder that "stage:NAME" names (a train stage's `output` overrides it); takes: for a REF key, the kinds
    whose product it accepts as a whole; check(stage, where): more checks when the recipe is read (raise
    ValueError, one line); commands(stage, run): the equivalent shell commands; run(stage, run): does the work
    and returns what else its stage.json should record."""
    name: str
    keys: dict
    required: tuple = ()
    product: str = ""
    takes: dict = field(default_factory=dict)
    check: Callable | None = None
    commands: Callable | None = None
    run: Callable | None = None

    def product_of(self, stage: Stage) -> str:
        return stage.options.get("output", self.product)


# ---- reading and checking ----------------------------------------------------------------------
def _toml(text: str, path: Path) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise RecipeError("reading a recipe needs Python 3.11 (tomllib) or the tomli package") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise RecipeError(f"{path.name}: not valid TOML: {e}") from None


def _typed(value, kind: str) -> bool:
    if kind == INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == FLOAT:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == BOOL:
        return isinstance(value, bool)
    if kind in (STR, REF, DATA, FILE_NAME):
        return isinstance(value, str) and bool(value)
    if kind in (NAMES, DATA_LIST):
        return isinstance(value, list) and all(isinstance(v, str) and v for v in value)
    if kind == TABLE:
        return isinstance(value, dict) and all(_typed(v, FLOAT) for v in value.values())
    raise AssertionError(kind)


def _data_name_problem(name: str) -> str | None:
    if Path(name).is_absolute() or "/" in name or "\\" in name or name in (".", ".."):
        return (f"'{name}' is a path; a recipe names its data (e.g. \"celeba\"), and the command says where it is "
                f"(--data-root DIR or --dataset {Path(name).name or 'NAME'}=FOLDER)")
    return None


def load_recipe(path, kinds: dict | None = None) -> Recipe:
    """Read and check a recipe: every error is one line naming the file, the stage and the key."""
    kinds = TRAIN_KINDS if kinds is None else kinds
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise RecipeError(f"recipe not found: {path}") from None
    doc = _toml(text, path)
    where = path.name
    unknown = sorted(set(doc) - {"format", "name", "description", "stage"})
    if unknown:
        raise RecipeError(f"{where}: unknown top-level key '{unknown[0]}' (format, name, description and [[stage]] "
                          "tables; was a key meant for a stage written above the first [[stage]]?)")
    if doc.get("format") != FORMAT:
        raise RecipeError(f"{where}: format = \"{FORMAT}\" is required first (got {doc.get('format')!r})")
    for key in ("name", "description"):
        if key in doc and not isinstance(doc[key], str):
            raise RecipeError(f"{where}: {key} must be a string")
    tables = doc.get("stage")
    if not isinstance(tables, list) or not tables:
        raise RecipeError(f"{where}: no stages: add [[stage]] tables, each with a name and a kind")
    stages: list[Stage] = []
    for i, table in enumerate(tables):
        name = table.get("name")
        label = f"{where}: stage {i + 1}"
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise RecipeError(f"{label}: name must be a folder name (letters, digits, . _ -), got {name!r}")
        label = f"{where}: stage '{name}'"
        if any(s.name == name for s in stages):
            raise RecipeError(f"{label}: the name is used by an earlier stage too")
        kind = table.get("kind")
        if kind not in kinds:
            raise RecipeError(f"{label}: kind must be one of {', '.join(kinds)}, got {kind!r}")
        options = {k.replace("-", "_"): v for k, v in table.items() if k not in ("name", "kind")}
        stage = Stage(name, kind, options, i)
        _check_stage(stage, kinds[kind], stages, kinds, label)
        stages.append(stage)
    return Recipe(path, doc.get("name", path.stem), doc.get("description", ""), stages)


def _check_stage(stage: Stage, kind: StageKind, earlier: list[Stage], kinds: dict, label: str):
    for key, value in stage.options.items():
        if key not in kind.keys:
            hint = {"out": "the runner sets it: RUN/" + stage.name,
                    "resume": "every stage resumes; --from-stage NAME starts one afresh"}.get(key)
            raise RecipeError(f"{label}: unknown key '{key}' for a {stage.kind} stage"
                              + (f" ({hint})" if hint else f" (it takes: {', '.join(sorted(kind.keys))})"))
        want = kind.keys[key]
        if want == DATA_LIST and isinstance(value, str):
            stage.options[key] = value = [value]
        if not _typed(value, want):
            raise RecipeError(f"{label}: {key} must be {want}, got {value!r}")
        if want in (DATA, DATA_LIST):
            for name in ([value] if want == DATA else value):
                problem = _data_name_problem(name)
                if problem:
                    raise RecipeError(f"{label}: {key}: {problem}")
        if want == FILE_NAME and (Path(value).name != value or value in (".", "..")):
            raise RecipeError(f"{label}: {key} must be a file name in the stage's folder, got {value!r}")
        if want == REF and value.startswith(STAGE_REF):
            ref, _, sub = value[len(STAGE_REF):].partition("/")
            source = next((s for s in earlier if s.name == ref), None)
            if source is None:
                raise RecipeError(f"{label}: {key} = '{value}': no earlier stage is named '{ref}'")
            accepted = kind.takes.get(key, ())
            if not sub and source.kind not in accepted:
                makes = kinds[source.kind].product_of(source)
                raise RecipeError(f"{label}: {key} = '{value}': a {source.kind} stage makes {makes}; {key} takes the "
                                  f"product of a {' or '.join(accepted)} stage (or stage:NAME/PATH for a file in it)")
    missing = [k for k in kind.required if k not in stage.options]
    if missing:
        raise RecipeError(f"{label}: {missing[0]} is required for a {stage.kind} stage")
    if kind.check:
        try:
            kind.check(stage)
        except ValueError as e:
            raise RecipeError(f"{label}: {str(e).splitlines()[0]}") from None


# ---- where things are ----------------------------------------------------------------------------
def shell_word(p) -> str:
    """A path or word for a printed command: quoted only where the shell needs it ($DATA_ROOT stays bare)."""
    s = str(p)
    return s if re.fullmatch(r"[\w@%+=:,./$-]+", s) else shlex.quote(s)


@dataclass
class RecipeRun:
    """One run of a recipe: where its stages write, where its data are, whom it tells."""
    recipe: Recipe
    out: Path
    kinds: dict
    data_root: Path | None = None
    datasets: dict = field(default_factory=dict)  # data name -> folder, over data_root
    log: Callable = print
    progress: Callable | None = None  # progress(stage_name, step, total, stats) for train stages
    dry_run: bool = False

    def stage_dir(self, stage: Stage | str) -> Path:
        return self.out / (stage if isinstance(stage, str) else stage.name)

    def product(self, stage: Stage) -> Path:
        return self.stage_dir(stage) / self.kinds[stage.kind].product_of(stage)

    def data(self, stage: Stage, name: str) -> Path:
        if name in self.datasets:
            return Path(self.datasets[name])
        if self.data_root is not None:
            return Path(self.data_root) / name
        if self.dry_run:
            return Path("$DATA_ROOT") / name
        raise RecipeError(f"{self.recipe.path.name}: stage '{stage.name}': data '{name}' is nowhere: give "
                          f"--data-root DIR (then it is DIR/{name}) or --dataset {name}=FOLDER")

    def path(self, stage: Stage, key: str) -> Path:
        value = stage.options[key]
        if value.startswith(STAGE_REF):
            ref, _, sub = value[len(STAGE_REF):].partition("/")
            source = self.recipe.stage(ref)
            return self.stage_dir(source) / sub if sub else self.product(source)
        return Path(value)

    def flags(self, stage: Stage, spec: dict) -> list[str]:
        """`--key value` for the options a stage gives (a command fills in its own defaults for the rest).
        spec: key -> "flag" (value follows), "switch" (--key / --no-key), "repeat" (once per item), "comma"
        (one comma-joined value), "pairs" (NAME=VALUE per item), "data", "path"."""
        out = []
        for key, how in spec.items():
            if key not in stage.options:
                continue
            value, flag = stage.options[key], "--" + key.replace("_", "-")
            if how == "switch":
                out.append(flag if value else "--no-" + flag[2:])
            elif how == "repeat":
                out += [w for v in value for w in (flag, shell_word(v))]
            elif how == "comma":
                out += [flag, shell_word(",".join(value))]
            elif how == "pairs":
                out += [w for k, v in value.items() for w in (flag, f"{k}={v!r}")]
            elif how == "data":
                out += [w for name in ([value] if isinstance(value, str) else value)
                        for w in (flag, shell_word(self.data(stage, name)))]
            elif how == "path":
                out += [flag, shell_word(self.path(stage, key))]
            else:
                out += [flag, shell_word(repr(value) if isinstance(value, float) else value)]
        return out


def _record_path(run: RecipeRun, stage: Stage) -> Path:
    return run.stage_dir(stage) / STAGE_RECORD


def finished(run: RecipeRun, stage: Stage) -> dict | None:
    """The stage's record if it has finished with the options it has now; None if it has not finished. A stage
    that finished with other options is an error: its product is not what the recipe says."""
    path = _record_path(run, stage)
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    label = f"{run.recipe.path.name}: stage '{stage.name}'"
    if record.get("kind") != stage.kind or record.get("options") != json.loads(json.dumps(stage.options)):
        old, new = record.get("options") or {}, stage.options
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k)) or ["kind"]
        raise RecipeError(f"{label}: finished before with other options ({', '.join(diff)}: see {path}); "
                          f"--from-stage {stage.name} runs it and the stages after it again")
    product = run.stage_dir(stage) / record["product"]
    if not product.exists():
        raise RecipeError(f"{label}: {path} says it made {product}, which is gone; --from-stage {stage.name} "
                          "runs it again")
    return record


# ---- running --------------------------------------------------------------------------------------
def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _preflight(run: RecipeRun, todo: list[Stage]):
    """Before anything runs: every data folder and every outside path the stages to run name exists, and every
    stage they refer to has finished or runs before them."""
    names = [s.name for s in todo]
    for stage in todo:
        kind = run.kinds[stage.kind]
        label = f"{run.recipe.path.name}: stage '{stage.name}'"
        for key, want in kind.keys.items():
            if key not in stage.options:
                continue
            value = stage.options[key]
            if want in (DATA, DATA_LIST):
                for name in ([value] if want == DATA else value):
                    folder = run.data(stage, name)
                    if not run.dry_run and not folder.is_dir():
                        raise RecipeError(f"{label}: {key}: data '{name}' is {folder}, which is not a folder")
            elif want == REF and value.startswith(STAGE_REF):
                ref = value[len(STAGE_REF):].partition("/")[0]
                if ref in names[:names.index(stage.name)]:
                    continue
                if finished(run, run.recipe.stage(ref)) is None and not run.dry_run:
                    raise RecipeError(f"{label}: {key} = '{value}', but stage '{ref}' has not finished (no "
                                      f"{_record_path(run, run.recipe.stage(ref))}); run without --from-stage")
            elif want == REF and not run.dry_run and not Path(value).exists():
                raise RecipeError(f"{label}: {key}: {value} not found")


def stage_commands(run: RecipeRun, stage: Stage) -> list[str]:
    return run.kinds[stage.kind].commands(stage, run)


def run_recipe(run: RecipeRun, from_stage: str | None = None) -> Path | None:
    """Run (or with run.dry_run, print) the recipe's stages in order; returns the last stage's product.

    A stage with a stage.json for its current options is skipped. from_stage: that stage and every stage
    after it run afresh (an earlier folder of theirs is moved aside to NAME.replaced-TIME, never deleted); the
    stages before it are left as they are, and must have finished where a later stage uses them."""
    recipe = run.recipe
    start = recipe.stage(from_stage).index if from_stage else 0
    todo = recipe.stages[start:]
    _preflight(run, todo)
    for stage in todo:
        done = None if from_stage else finished(run, stage)
        header = f"# stage {stage.index + 1}/{len(recipe.stages)} '{stage.name}' ({stage.kind}) -> {run.product(stage)}"
        if run.dry_run:
            run.log(header + ("  [finished: skipped]" if done else ""))
            for line in stage_commands(run, stage):
                run.log(line)
            continue
        if done:
            run.log(f"{header}: finished {done.get('finished')}, skipped")
            continue
        folder = run.stage_dir(stage)
        if from_stage and folder.exists():
            aside = folder.with_name(f"{folder.name}.replaced-{time.strftime('%Y%m%dT%H%M%S')}")
            folder.rename(aside)
            run.log(f"moved the earlier {folder} aside to {aside}")
        run.log(header)
        folder.mkdir(parents=True, exist_ok=True)
        commands = stage_commands(run, stage)
        started, t0 = _now(), time.time()
        try:
            extra = run.kinds[stage.kind].run(stage, run) or {}
        except RecipeError:
            raise
        except (ValueError, RuntimeError, OSError) as e:  # the functions' own one-line errors, with the stage
            raise RecipeError(f"{recipe.path.name}: stage '{stage.name}' ({stage.kind}): "
                              f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        product = run.product(stage)
        if not product.exists():
            raise RecipeError(f"{recipe.path.name}: stage '{stage.name}' ended without making {product}")
        record = {"format": STAGE_FORMAT, "recipe": recipe.name, "recipe_file": str(recipe.path), "stage": stage.name,
                  "kind": stage.kind, "options": stage.options, "product": str(product.relative_to(folder)),
                  "commands": commands, "started": started, "finished": _now(),
                  "seconds": round(time.time() - t0, 1), **extra}
        atomic_write_text(_record_path(run, stage), json.dumps(record, indent=1) + "\n")
        run.log(f"stage '{stage.name}' finished in {record['seconds']:g} s: {product}")
    return run.product(recipe.stages[-1]) if recipe.stages else None


# ---- the training room's kinds -------------------------------------------------------------------
def _judge_check(stage: Stage):
    if stage.options.get("arch", "judge") not in JUDGE_ARCHS:
        raise ValueError(f"arch must be one of {', '.join(JUDGE_ARCHS)}, got {stage.options['arch']!r}")


JUDGE_FLAGS = {"epochs": "flag", "steps": "flag", "batch_size": "flag", "lr": "flag", "seed": "flag", "arch": "flag"}
GUIDE_FLAGS = {"steps": "flag", "eps": "flag", "width": "flag", "batch_size": "flag", "lr": "flag", "seed": "flag"}


def _judge_commands(stage, run):
    return [" ".join(["faceedit train judge", *run.flags(stage, {"data": "data"}), "--out", shell_word(run.product(stage)),
                      *run.flags(stage, JUDGE_FLAGS)])]


def _judge_run(stage, run):
    from faceedit.train.judge import train_judge
    o = stage.options
    train_judge(run.data(stage, o["data"]), run.product(stage), log=run.log,
                **{k: o[k] for k in JUDGE_FLAGS if k in o})


def _guide_commands(stage, run):
    return [" ".join(["faceedit train guide", *run.flags(stage, {"data": "data"}), "--out", shell_word(run.product(stage)),
                      *run.flags(stage, GUIDE_FLAGS)])]


def _guide_run(stage, run):
    from faceedit.train.guide import train_guide
    o = stage.options
    train_guide(run.data(stage, o["data"]), run.product(stage), log=run.log,
                **{k: o[k] for k in GUIDE_FLAGS if k in o})


def _from_model_check(stage: Stage):
    if stage.options.get("faces", 2048) < 64:
        raise ValueError(f"faces must be at least 64, got {stage.options['faces']}")


def _from_model_commands(stage, run):
    return [" ".join(["faceedit train from-model", *run.flags(stage, {"model": "path", "data": "data"}),
                      "--out", shell_word(run.stage_dir(stage)), *run.flags(stage, {"faces": "flag", "edit_mask": "switch"})])]


def _from_model_run(stage, run):
    from faceedit.train.from_model import checkpoint_from_model
    o = stage.options
    checkpoint_from_model(run.path(stage, "model"), run.data(stage, o["data"]), run.stage_dir(stage),
                          **({"faces": o["faces"]} if "faces" in o else {}), log=run.log,
                          edit_mask=bool(o.get("edit_mask", False)))


def _train_keys() -> dict:
    types = typing.get_type_hints(TrainConfig)
    plain = {bool: BOOL, int: INT, float: FLOAT, str: STR, list[str]: NAMES}
    keys = {f.name: plain[types[f.name]] for f in fields(TrainConfig) if f.name not in ("out", "data")}
    keys.update(data=DATA_LIST, guide=REF, judge=REF, start=REF, output=FILE_NAME)
    return keys


def train_config(stage: Stage, run: RecipeRun | None = None) -> TrainConfig:
    """The stage's TrainConfig: its options, its data folders, RUN/NAME as the run folder."""
    o = {k: v for k, v in stage.options.items() if k not in ("start", "output")}
    if run is not None:
        o.update(data=[str(run.data(stage, n)) for n in o.get("data", [])], out=str(run.stage_dir(stage)))
        o.update({k: str(run.path(stage, k)) for k in ("guide", "judge") if k in o})
    return TrainConfig(**o)


def _train_check(stage: Stage):
    train_config(stage).check()


def _train_flags(stage: Stage) -> dict:
    types = typing.get_type_hints(TrainConfig)
    how = {bool: "switch", list[str]: "repeat"}
    return {f.name: "path" if f.name in ("guide", "judge") else how.get(types[f.name], "flag")
            for f in fields(TrainConfig) if f.name not in ("out", "data")}


def _train_commands(stage, run):
    out = run.stage_dir(stage)
    lines = []
    if "start" in stage.options:  # cp -n: only when the run has no last.pt of its own yet (it resumes that)
        lines.append(f"mkdir -p {shell_word(out)} && cp -n {shell_word(run.path(stage, 'start'))} {shell_word(out / 'last.pt')}")
    lines.append(" ".join(["faceedit train", *run.flags(stage, {"data": "data"}), "--out", shell_word(out), "--resume",
                           *run.flags(stage, _train_flags(stage))]))
    return lines


def _train_run(stage, run):
    from faceedit.train.train import Trainer
    cfg = train_config(stage, run)
    cfg.check()
    last = Path(cfg.out) / "last.pt"
    if "start" in stage.options and not last.exists():
        with atomic_path(last) as tmp:
            shutil.copyfile(run.path(stage, "start"), tmp)
        run.log(f"start: {run.path(stage, 'start')} copied to {last}")
    trainer = Trainer(cfg, resume=True, log=run.log)
    progress = (lambda step, total, stats: run.progress(stage.name, step, total, stats)) if run.progress else None
    trainer.fit(progress)
    product = run.product(stage)
    if not product.exists():
        raise RecipeError(f"{run.recipe.path.name}: stage '{stage.name}': the run ended at step {trainer.step} "
                          f"without writing {product.name} (output)")
    return {"step": trainer.step, "config": asdict(cfg)}


_CHECKPOINT = ("train", "from-model")
TRAIN_KINDS = {
    "judge": StageKind("judge", dict(data=DATA, epochs=INT, steps=INT, batch_size=INT, lr=FLOAT, seed=INT, arch=STR),
                       ("data",), "judge.pt", check=_judge_check, commands=_judge_commands, run=_judge_run),
    "guide": StageKind("guide", dict(data=DATA, steps=INT, eps=FLOAT, width=INT, batch_size=INT, lr=FLOAT, seed=INT),
                       ("data",), "guide.pt", commands=_guide_commands, run=_guide_run),
    "from-model": StageKind("from-model", dict(model=REF, data=DATA, faces=INT, edit_mask=BOOL), ("model", "data"), "last.pt",
                            takes={"model": ("export", "export-update")}, check=_from_model_check,
                            commands=_from_model_commands, run=_from_model_run),
    "train": StageKind("train", _train_keys(), ("data",), "last.pt",
                       takes={"start": _CHECKPOINT, "guide": ("guide",), "judge": ("judge",)},
                       check=_train_check, commands=_train_commands, run=_train_run),
}
