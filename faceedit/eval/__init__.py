"""The evaluation room: `faceedit eval`'s figures for a model directory or a training checkpoint.

- subject.py: the model under test, always driven through faceedit.engine.Editor (one edit implementation):
  an exported directory on ONNX Runtime fp32, a checkpoint on a small torch backend (torch imported lazily).
- judge.py: the judges that score edits (a judge set's judge.onnx and reporting_judge.onnx, the repository's
  in evaluation/judges/, or their .pt checkpoints); no model directory carries them.
- run.py: the loop that edits every face of a split, one attribute at a time, and counts.
- metrics.py: PSNR and SSIM.  realism.py: artifact score, two-sample test, KID.
- report.py: the JSON's summary, strength tables, the console report.  figure.py: median/worst edits PNG.

Imports: faceedit.core and faceedit.engine; torch and faceedit.train only inside the functions that need them
(checkpoints, the two-sample CNN, reading the data set), so a model directory is scored without torch."""
