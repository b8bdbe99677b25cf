"""The evaluation room: `faceedit eval`'s figures for a model directory or a training checkpoint.

- subject.py: the model under test, one engine.Editor over it: an exported directory on ONNX Runtime fp32, a
  checkpoint on a small torch backend (torch imported lazily).
- adapter.py: the one place eval calls the Editor (render an edit, read the attribute head).
- judge.py: the judges that score edits (a judge set's judge.onnx and reporting_judge.onnx, the repository's
  in evaluation/judges/, or their .pt checkpoints); no model directory carries them.
- run.py: EvalConfig and the loop's steps: read the faces, reconstruct them, then per attribute edit at each
  intensity, the default edit, the auto strength sweep; evaluate() runs them.
- results.py: the JSON from run.py's counts, realism included (artifact ratio, two-sample test, KID).
- samples.py: the samples step: new faces drawn from the latent prior with the faces' labels, read by the
  reporting judge, two-sample tested against the real faces, KID.
- metrics.py: PSNR and SSIM.  realism.py: artifact score, two-sample test, KID.
- report.py: the JSON's summary, strength tables, the console report.  figure.py: median/worst edits PNG.

Imports: faceedit.core and faceedit.engine; torch and faceedit.train only inside the functions that need them
(checkpoints, the two-sample CNN, reading the data set), so a model directory is scored without torch."""
