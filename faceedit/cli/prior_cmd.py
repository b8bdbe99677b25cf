"""`faceedit prior fit`: fit a model directory's latent prior (what `faceedit sample` draws new faces from);
`faceedit prior temperature`: set the temperature it draws at by default."""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import List, Optional

import typer

from faceedit.cli.reporting import UserError, friendly


def register(app: typer.Typer):
    prior_app = typer.Typer(no_args_is_help=True, help="The latent prior new faces are drawn from (`faceedit prior fit`, `faceedit prior temperature`).")
    app.add_typer(prior_app, name="prior")

    @prior_app.command("fit")
    @friendly
    def fit(model: Path = typer.Option(..., "--model", help="The model directory whose encoder encodes the faces (and, with --install, that gets the prior)."),
            data: List[Path] = typer.Option(..., "--data", help="CelebA-layout folder whose train split is encoded; repeat for more (the first folder's val split gives the held-out figures)."),
            kind: str = typer.Option("cgmm", "--kind", help="gaussian (one full-covariance Gaussian, what export writes), gmm (a mixture of Gaussians in the codes' principal directions) or cgmm (the mixture conditional on the attributes asked for)."),
            out: Optional[Path] = typer.Option(None, "--out", help="Write the prior file (.npz) here."),
            install: bool = typer.Option(False, "--install", help="Install it into --model: the file, then the manifest (atomically, with its sha256 and the fit's figures); the previous prior file is removed."),
            components: int = typer.Option(32, "--components", help="gmm, cgmm: mixture components."),
            dims: int = typer.Option(128, "--dims", help="gmm, cgmm: principal directions the mixture lives in (the others: one Gaussian)."),
            temperature: float = typer.Option(1.0, "--temperature", help="The prior's default sampling temperature (0..2; below 1 draws nearer each component's middle)."),
            limit: int = typer.Option(0, "--limit", help="At most this many faces of each folder's train split, at random (0: all)."),
            seed: int = typer.Option(0, "--seed", help="Seeds the choice of faces, the fit and the faces drawn to check it."),
            codes: Optional[Path] = typer.Option(None, "--codes", help="Keep the encoded faces in this .npz and reuse them while the encoder, folders and --limit match (fitting several kinds encodes once). Codes of CelebA faces: keep the file outside the repository.")):
        """Fit a latent prior on the encoder means of training faces; write it (--out) and/or install it (--install).

        Example: faceedit prior fit --model runs/prior/cgmm --data ../shared/celeba --kind cgmm --install
        """
        from faceedit.core.manifest import ManifestError
        from faceedit.export.prior import PriorError, fit_prior
        if out is None and not install:
            raise UserError("nowhere to put the prior: give --out FILE and/or --install")
        if out is not None and out.suffix != ".npz":
            raise UserError(f"--out must be an .npz file, got {out}")
        for d in data:
            if not d.is_dir():
                raise UserError(f"--data {d}: not a folder")
        command = " ".join(["faceedit prior fit --model", shlex.quote(str(model)), *(f"--data {shlex.quote(str(d))}" for d in data),
                            f"--kind {kind}", *([f"--components {components} --dims {dims}"] if kind != "gaussian" else []),
                            f"--temperature {temperature:g}", *([f"--limit {limit}"] if limit else []), f"--seed {seed}"])
        try:
            entry = fit_prior(model, data, kind, out, install, components, dims, temperature, limit, seed, codes,
                              command=command, log=lambda m: typer.echo(m, err=True))
        except (PriorError, ManifestError) as e:
            raise UserError(str(e)) from None
        typer.echo(f"{entry['kind']} prior, sha256 {entry['sha256'][:12]}"
                   + (f", held-out log-likelihood {entry['fitted']['heldout_loglik_per_number']:.4f} per number"
                      if (entry.get('fitted') or {}).get('heldout_loglik_per_number') is not None else ""))

    @prior_app.command("temperature")
    @friendly
    def temperature_cmd(model: Path = typer.Option(..., "--model", help="The model directory whose prior gets the new default temperature."),
                        temperature: float = typer.Option(..., "--temperature", help="The default sampling temperature, 0..2 (below 1 draws nearer the dense middle)."),
                        why: str = typer.Option("", "--why", help="How it was chosen (kept in the manifest beside it, e.g. the rule file).")):
        """Set the default sampling temperature of a model directory's prior: the same arrays in a new file,
        installed like a fit (its sha256 in the manifest, the old file removed).

        Example: faceedit prior temperature --model models/mine --temperature 0.8 --why "docs/eval/prior-choice-rule.txt"
        """
        from faceedit.core.manifest import ManifestError
        from faceedit.export.prior import PriorError, set_temperature
        try:
            entry = set_temperature(model, temperature, why, log=lambda m: typer.echo(m, err=True))
        except (PriorError, ManifestError) as e:  # ModelError is ManifestError
            raise UserError(str(e)) from None
        typer.echo(f"prior {entry['sha256'][:12]}: default temperature {entry['temperature']:g}")
