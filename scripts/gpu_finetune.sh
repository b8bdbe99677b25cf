#!/usr/bin/env bash
# Fine-tune the CVAE-GAN on a CUDA machine from a carried bundle, several recipes at once on one GPU, and
# send back the slim generator of the best validation checkpoints. What it needs (`faceedit train bundle`):
#   gpu/data      pack-data of the training set;  gpu/start.pt  slim checkpoint (generator + D) to resume
#   gpu/judge.pt  the judge, so each run scores its checkpoints on validation as it goes
# Usage: scripts/gpu_finetune.sh RESULT_DIR SECONDS [RECIPES]   (SECONDS of training per recipe, all at once)
set -uo pipefail
RESULT=${1:?result folder}; SECS=${2:?seconds of training}
EVAL_EVERY=${EVAL_EVERY:-500}; KEEP=${KEEP:-5}
export PYTHONUNBUFFERED=1 FACEEDIT_CACHE=${FACEEDIT_CACHE:-/tmp/faceedit-cache}
PY=${PYTHON:-python3}; FACEEDIT=${FACEEDIT:-faceedit}  # the interpreter and the command of the install to use
mkdir -p "$RESULT" gpu/runs
command -v nvidia-smi >/dev/null && nvidia-smi -L
$PY -c "import torch, cv2; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'cv2', cv2.__version__)"
$FACEEDIT train bundle unpack-data --bundle gpu/data || exit 1

# One line per recipe in RECIPES: a name, then train options (all resume from gpu/start.pt, run together).
RECIPES=${3:-scripts/gpu_recipes/round1.txt}
common="--data gpu/data --steps 1000000 --resume --judge gpu/judge.pt --eval-every $EVAL_EVERY --max-val 256
        --ckpt-every 1000000 --w-edit 25 --w-pixel 80 --threads 3 --time-limit $SECS"
while read -r name options; do  # not a pipe: the trainings must be this shell's children for `wait`
  [ -n "$name" ] || continue
  mkdir -p gpu/runs/$name && cp gpu/start.pt gpu/runs/$name/last.pt
  $PY -m faceedit.train $common $options --out gpu/runs/$name > gpu/runs/$name.log 2>&1 &
done < <(grep -v '^#' "$RECIPES")
sleep 45; tail -n 2 gpu/runs/*.log; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv 2>/dev/null
wait
tail -n 4 gpu/runs/*.log

# Candidates by the pre-declared rule: highest attr + judge edit + PSNR/100 among val PSNR >= 22.3 dB;
# the best of each recipe, then the next best overall, KEEP in all.
$PY - "$RESULT" "$KEEP" <<'PYEOF'
import csv, sys
from pathlib import Path
from faceedit.train.bundle import slim_checkpoint
from faceedit.train.train import validation_score
result, keep = Path(sys.argv[1]), int(sys.argv[2])
rows = []
for log in sorted(Path("gpu/runs").glob("*/log.csv")):
    for r in csv.DictReader(open(log)):
        if r.get("edit_success_judge"):
            v = {k: float(r[k]) for k in ("attr_acc", "psnr", "edit_success_judge")}
            rows.append((validation_score(v), log.parent.name, int(r["step"]), v))
for score, run, step, v in sorted(rows, key=lambda t: (t[1], t[2])):
    print(f"{run} {step} score {score:.4f} attr {v['attr_acc']:.4f} edit {v['edit_success_judge']:.4f} psnr {v['psnr']:.2f}")
ok = sorted((r for r in rows if r[3]["psnr"] >= 22.3), reverse=True)
chosen = []
for run in sorted({r[1] for r in ok}):
    chosen.append(next(r for r in ok if r[1] == run))
chosen += [r for r in ok if r not in chosen][: max(0, keep - len(chosen))]
for score, run, step, v in chosen[:keep]:
    src = Path("gpu/runs") / run / f"step_{step:07d}.pt"
    slim_checkpoint(src, result / f"{run}_{step}.pt", generator_only=True)
    print(f"sent back {run} step {step} (score {score:.4f})")
PYEOF
tar czf "$RESULT/logs.tgz" gpu/runs/*.log gpu/runs/*/log.csv $(for d in gpu/runs/*/samples; do ls $d/*.png | tail -n 1; done)
ls -la "$RESULT"
