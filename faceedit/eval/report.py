"""What `faceedit eval` reports: the JSON's summary (a manifest's "eval" entry), the strength tables that
`faceedit export --edit-gains-from` and `export-update --auto-strength-from` choose from, issue 17's realism
targets, and the console report. Reads result dicts only: no model, no torch."""
from __future__ import annotations

from pathlib import Path

from faceedit.core.files import atomic_write_text

def best_tops(result: dict) -> dict[str, float]:
    """Per attribute, the auto strength top with the best net effect in a validation sweep (ties: the lower
    top; 1 = fixed strength). `faceedit export-update --auto-strength-from` applies it."""
    return {a: min(rows, key=lambda r: (-r["net"], r["top_multiplier"]))["top_multiplier"]
            for a, rows in result["auto_strength_sweep"]["rows"].items()}


def ratio(a, b):
    return round(float(a) / b, 4) if b else None


def result_gains(result: dict) -> dict[str, float]:
    """The decoder gain each attribute was evaluated at (JSON from before per-attribute gains: one "edit_gain")."""
    gains = result.get("edit_gains") or {}
    return {a: float(gains.get(a, result.get("edit_gain", 1.0))) for a in result["attributes"]}


def _strength_rows(result: dict, success, disturbance, gain: float) -> list[dict]:
    """One row per scored intensity: the gain it amounts to (value 1 at that gain = value `intensity` at
    `gain`), residual edit success, disturbance, and the net effect success - (A-1) x disturbance: intended
    flips landed minus unintended flips caused, per edit (each unintended one counts as much as an intended
    one). success/disturbance pick the figure from a per-intensity block."""
    n_other = len(result["attributes"]) - 1
    rows = []
    for key, modes in result["edit_success"].items():
        inten = float(key.split("_", 1)[1])
        s, d = success(modes["residual"]), disturbance(result["edit_disturbance"][key])
        rows.append({"intensity": inten, "gain": round(gain * (2 * inten - 1), 4), "edit_success": s,
                     "disturbance": d, "net": round(s - n_other * d, 4)})
    return sorted(rows, key=lambda r: r["intensity"])


def strength_table(result: dict) -> list[dict]:
    """_strength_rows for the mean over the 13 standard attributes (with per-attribute gains, "gain" is the
    factor on each attribute's own). `faceedit export --edit-gain` takes the gain with the best net effect
    on validation."""
    gains = set(result_gains(result).values())
    mean = lambda block: block["mean_standard13"]
    return _strength_rows(result, mean, mean, gains.pop() if len(gains) == 1 else 1.0)


def attribute_strengths(result: dict) -> dict[str, list[dict]]:
    """_strength_rows for each attribute on its own: the same net effect, from that attribute's edits."""
    return {a: _strength_rows(result, lambda b: b["per_attribute"][a], lambda b: b["per_attribute"][a], g)
            for a, g in result_gains(result).items()}


def best_gains(result: dict) -> dict[str, float]:
    """Per attribute, the gain with the best net effect (ties: the lower gain): some attributes land only
    partly at value 1 yet disturb little when pushed harder (hair colour), others disturb more at once
    (Male, No_Beard). `faceedit export --edit-gains-from` applies this to a validation sweep."""
    return {a: min(rows, key=lambda r: (-r["net"], r["gain"]))["gain"]
            for a, rows in attribute_strengths(result).items()}


def summary(result: dict) -> dict:
    """The headline: edits as the product makes them by default (auto strength where the model has it), and
    the samples step's figures (what the page warns with). An evaluation without edits: the samples alone."""
    if "edit_success" not in result:
        return {"split": result["split"], "faces": result["faces"], **samples_summary(result)}
    fixed = result["edit_success"]["intensity_1"]["residual"]
    auto = result.get("auto_strength") or {}
    on = any(t > 1 for t in (auto.get("top_multiplier") or {}).values())
    es = auto["edit_success"] if on else fixed
    disturbance = auto["edit_disturbance"] if on else result["edit_disturbance"]["intensity_1"]
    # JSON written before implied attributes existed lacks this block: nothing was implied, so it equals disturbance
    if on:
        free = auto.get("edit_disturbance_excluding_implied", disturbance)
    else:
        free = (result.get("edit_disturbance_excluding_implied") or {}).get("intensity_1", disturbance)
    return {"split": result["split"], "faces": result["faces"],
            "attribute_accuracy_mean13": result["attribute_accuracy"]["mean_standard13"],
            "edit_success_mean13": es["mean_standard13"],
            "edit_success_fixed_mean13": fixed["mean_standard13"],
            "edit_success_raw_mean13": result["edit_success"]["intensity_1"]["raw"]["mean_standard13"],
            "psnr_db": result["reconstruction"]["psnr_db"], "ssim": result["reconstruction"]["ssim"],
            "edit_disturbance_mean13": disturbance["mean_standard13"],
            "edit_disturbance_excluding_implied_mean13": free["mean_standard13"],
            "implied_rules": sorted((result.get("implied") or {}).get("rules") or {}),
            "edit_gains": result_gains(result),
            "auto_strength_tops": {a: t for a, t in (auto.get("top_multiplier") or {}).items() if t > 1},
            # per attribute, so the runtime can warn before an edit that rarely lands
            "edit_success_per_attribute": {k: round(float(v), 4) for k, v in es["per_attribute"].items()},
            **realism_summary(result), **samples_summary(result)}


def samples_summary(result: dict) -> dict:
    """The samples step's headline (empty without one): the prior measured (its file's sha256: the engine warns
    only with figures of the prior it draws from), how often each attribute asked for is read on the faces drawn
    for it (on, off), the two-sample test and KID."""
    b = result.get("samples")
    if not b or "skipped" in b:
        return {}
    two, kid = b.get("two_sample") or {}, b.get("kid") or {}
    return {"samples_prior": b["prior"].get("kind"), "samples_prior_sha256": b["prior"].get("sha256"),
            "samples_temperature": b["prior"].get("temperature"), "samples_judge": b["judge"],
            "samples_read_balanced_mean13": b["read"]["balanced_mean_standard13"],
            "samples_read_per_attribute": {a: {"on": v["on"], "off": v["off"]} for a, v in b["read"]["per_attribute"].items()},
            **({"samples_two_sample_accuracy": two["accuracy"], "samples_two_sample_reconstruction": two["reconstruction"]}
               if "accuracy" in two else {}),
            **({"samples_kid": kid["drawn"], "samples_kid_real_faces": kid["real_faces"]} if "drawn" in kid else {})}


def realism_summary(result: dict) -> dict:
    """The realism headline (empty for JSON from before realism was measured)."""
    r = result.get("realism")
    if not r:
        return {}
    two = r.get("two_sample") or {}
    out = {"scoring_judge": (result.get("judges") or {}).get("scoring"),
           "edit_success_realistic_mean13": r["edit_success_realistic"]["mean_standard13"],
           "edit_success_realistic_per_attribute": dict(r["edit_success_realistic"]["per_attribute"]),
           "artifact_band": r["artifact_band"],
           "artifact_ratio_median_per_attribute": {a: v["median"] for a, v in r["artifact_ratio"]["per_attribute"].items()}}
    if "per_attribute" in two:
        out["two_sample_accuracy_reconstruction"] = two["reconstruction"]
        out["two_sample_accuracy_edits_mean13"] = two["mean_standard13"]
    if "per_attribute" in (r.get("kid") or {}):
        out["kid_edits_mean13"] = r["kid"]["mean_standard13"]
    return out


def write_json(obj, path):
    import json
    atomic_write_text(Path(path), json.dumps(obj, indent=2) + "\n")


# issue 17's targets (validation for choices; the test split once, with the reporting judge)
TARGETS = {"realistic_success_mean13": 0.80, "realistic_success_min": 0.50, "two_sample_margin": 0.05,
           "artifact_ratio_median_max": 1.10, "psnr_db_min": 26.0, "disturbance_max": 0.07,
           "attribute_accuracy_min": 0.93}


def targets(result: dict) -> list[dict]:
    """Each of issue 17's targets: what it asks, the figure reached, met or not (None: not measured)."""
    from faceedit.core.attributes import STANDARD_13
    r = result.get("realism") or {}
    std = [a for a in result["attributes"] if a in STANDARD_13]
    rows = []

    def row(name, want, value, met):
        rows.append({"target": name, "wants": want, "value": value, "met": met})
    if r:
        real = r["edit_success_realistic"]
        worst = min(std, key=lambda a: real["per_attribute"][a])
        row("realistic edit success, mean of 13", ">= 80%", real["mean_standard13"],
            real["mean_standard13"] >= TARGETS["realistic_success_mean13"])
        row("realistic edit success, lowest attribute", ">= 50%", {worst: real["per_attribute"][worst]},
            real["per_attribute"][worst] >= TARGETS["realistic_success_min"])
        two = r.get("two_sample") or {}
        if "per_attribute" in two:
            over = {a: v for a, v in two["per_attribute"].items()
                    if a in std and v > two["reconstruction"] + TARGETS["two_sample_margin"]}
            row("two-sample accuracy on edits <= reconstructions + 5 points, each attribute",
                f"<= {two['reconstruction'] + TARGETS['two_sample_margin']:.3f}", over or "all within", not over)
        else:
            row("two-sample accuracy on edits <= reconstructions + 5 points", "measured", None, None)
        med = {a: v["median"] for a, v in r["artifact_ratio"]["per_attribute"].items() if a in std}
        over = {a: v for a, v in med.items() if v > TARGETS["artifact_ratio_median_max"]}
        row("median artifact ratio, each attribute", "<= 1.10", over or f"max {max(med.values()):.3f}", not over)
    s = summary(result)
    row("reconstruction PSNR", ">= 26 dB", s["psnr_db"], s["psnr_db"] >= TARGETS["psnr_db_min"])
    row("disturbance (default edit), mean of 13", "<= 7%", s["edit_disturbance_mean13"],
        s["edit_disturbance_mean13"] <= TARGETS["disturbance_max"])
    row("attribute inference, mean of 13", ">= 93%", s["attribute_accuracy_mean13"],
        s["attribute_accuracy_mean13"] >= TARGETS["attribute_accuracy_min"])
    return rows


def print_report(console, res: dict, title: str, uniform_gains: bool) -> None:
    """The console report of a result; adds the strength tables ("edit_strength", "edit_strength_per_attribute")
    to res where it scored more than one intensity. uniform_gains: the model has one gain for every attribute
    (a row's gain is then that gain; else a factor on each attribute's own)."""
    from rich.table import Table
    t = Table(title=title)
    auto = res["auto_strength"]
    has_auto = any(v > 1 for v in auto["top_multiplier"].values())
    for c in ("attribute", "inference acc", "edit success", *(["edit (auto strength)"] if has_auto else []),
              "edit (raw)", "edit x2", "disturbance", "judge acc"):
        t.add_column(c, justify="right" if c != "attribute" else "left")
    e1, e2 = res["edit_success"]["intensity_1"], res["edit_success"].get("intensity_2")
    d1 = res["edit_disturbance"]["intensity_1"]
    pct = lambda v: f"{v:.1%}"
    for a in res["attributes"] + ["mean (13 standard)"]:
        get = (lambda b: b["mean_standard13"]) if a.startswith("mean") else (lambda b, a=a: b["per_attribute"][a])
        t.add_row(f"[bold]{a}" if a.startswith("mean") else a, pct(get(res["attribute_accuracy"])),
                  pct(get(e1["residual"])), *([pct(get(auto["edit_success"]))] if has_auto else []),
                  pct(get(e1["raw"])), pct(get(e2["residual"])) if e2 else "-", pct(get(d1)),
                  pct(get(res["judge_accuracy_on_real"])))
    console.print(t)
    if has_auto:
        console.print(f"auto strength (the default edit): success {auto['edit_success']['mean_standard13']:.1%}, "
                      f"disturbance {auto['edit_disturbance']['mean_standard13']:.1%} (fixed strength: "
                      f"{e1['residual']['mean_standard13']:.1%}, {d1['mean_standard13']:.1%})")
    if res["implied"]["rules"]:
        free = (auto["edit_disturbance_excluding_implied"] if has_auto
                else res["edit_disturbance_excluding_implied"]["intensity_1"])
        console.print(f"implied attributes ({', '.join(res['implied']['rules'])}): disturbance of the attributes an "
                      f"edit did not set itself {free['mean_standard13']:.1%}")
    console.print(f"reconstruction: PSNR {res['reconstruction']['psnr_db']:.2f} dB, SSIM {res['reconstruction']['ssim']:.3f}")
    _print_realism(console, res)
    rows = strength_table(res)
    if len(rows) > 1:
        gain = (lambda g: f"gain {g:g}") if uniform_gains else (lambda g: f"gains x{g:g}")
        console.print("edit strength (13 standard, residual): " + "; ".join(
            f"value {r['intensity']:g} = {gain(r['gain'])}: success {r['edit_success']:.1%}, disturbance "
            f"{r['disturbance']:.1%}, net {r['net']:+.3f}" for r in rows))
        if uniform_gains:
            best = max(rows, key=lambda r: r["net"])
            console.print(f"best net effect at gain {best['gain']:g} (faceedit export --edit-gain {best['gain']:g})")
        per = best_gains(res)
        console.print("best net effect per attribute (faceedit export --edit-gains-from this JSON, if it is a "
                      "validation run): " + ", ".join(f"{a} {g:g}" for a, g in per.items()))
        res["edit_strength"] = rows
        if "auto_strength_sweep" in res:
            console.print("auto strength, best top multiplier per attribute (faceedit export-update "
                          "--auto-strength-from this JSON, if it is a validation run): "
                          + ", ".join(f"{a} {g:g}" for a, g in best_tops(res).items()))
        res["edit_strength_per_attribute"] = {"best_gains": per, "rows": attribute_strengths(res)}


def print_samples(console, res: dict) -> None:
    """The samples step's table: per attribute, how often the judge reads it on faces drawn with it and without
    it, balanced, and the same judge on real faces; then the two-sample test and KID."""
    from rich.table import Table
    b = res.get("samples")
    if not b:
        return
    if "skipped" in b:
        console.print(f"new faces not measured: {b['skipped']}")
        return
    p = b["prior"]
    t = Table(title=f"new faces: {b['faces']} drawn from the {p['kind']} prior (temperature {p['temperature']:g}, seed "
                    f"{b['seed']}) with the labels of the {res['split']} faces, read by {b['judge']}")
    for c in ("attribute", "drawn with it: read on", "drawn without: read off", "balanced", "real faces (balanced)"):
        t.add_column(c, justify="right" if c != "attribute" else "left")
    pct = lambda v: "-" if v is None else f"{v:.1%}"
    for a, v in b["read"]["per_attribute"].items():
        t.add_row(a, f"{pct(v['on'])} of {v['n_on']}", f"{pct(v['off'])} of {v['n_off']}", pct(v["balanced"]),
                  pct(b["real_faces"]["balanced_per_attribute"][a]))
    t.add_row("[bold]mean (13 standard)", "", "", pct(b["read"]["balanced_mean_standard13"]),
              pct(b["real_faces"]["balanced_mean_standard13"]))
    console.print(t)
    two, kid = b.get("two_sample") or {}, b.get("kid") or {}
    if "accuracy" in two:
        console.print(f"two-sample test, drawn vs real faces ({two['folds']}-fold by {two['split_by']}, {two['faces']} "
                      f"faces): {two['accuracy']:.1%} (50% = indistinguishable; raw reconstructions {two['reconstruction']:.1%})")
    else:
        console.print(f"two-sample test of drawn faces skipped: {two.get('skipped')}")
    if "drawn" in kid:
        console.print(f"KID x1000 in {kid['features']} features vs train faces: drawn {1000 * kid['drawn']:.2f}, "
                      f"real faces {1000 * kid['real_faces']:.2f}")
    else:
        console.print(f"KID of drawn faces skipped: {kid.get('skipped')}")


def samples_card(res: dict, command: str = "") -> str:
    """The model card's "New faces" section (markdown) from an evaluation's samples block."""
    b = res["samples"]
    if "skipped" in b:
        return f"## New faces\n\nNot measured: {b['skipped']}.\n"
    p, two, kid = b["prior"], b.get("two_sample") or {}, b.get("kid") or {}
    pct = lambda v: "-" if v is None else f"{v:.1%}"
    lines = ["## New faces", "",
             f"Measured by `faceedit eval` (faceedit/eval/samples.py) on the {res['split']} split: {b['faces']} faces drawn "
             f"from the model's **{p['kind']}** latent prior ({p['meaning']}; temperature {p['temperature']:g}, seed "
             f"{b['seed']}), one per {res['split']} face with that face's labels as the attributes asked for, read by "
             f"{b['judge']}." + (f" Command: `{command}`." if command else ""), "",
             "| attribute | drawn with it: read on | drawn without: read off | balanced | real faces (balanced) |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for a, v in b["read"]["per_attribute"].items():
        lines.append(f"| {a} | {pct(v['on'])} ({v['n_on']}) | {pct(v['off'])} ({v['n_off']}) | {pct(v['balanced'])} | "
                     f"{pct(b['real_faces']['balanced_per_attribute'][a])} |")
    lines.append(f"| **mean of 13** | | | **{pct(b['read']['balanced_mean_standard13'])}** | "
                 f"{pct(b['real_faces']['balanced_mean_standard13'])} |")
    lines.append("")
    if "accuracy" in two:
        lines.append(f"Two-sample test (a fresh small CNN per fold, {two['folds']}-fold by {two['split_by']}, "
                     f"{two['faces']} faces): it tells drawn faces from real ones **{pct(two['accuracy'])}** of the time "
                     f"(50% = it cannot; raw reconstructions: {pct(two['reconstruction'])}).")
    if "drawn" in kid:
        lines.append(f"KID x1000 in {kid['features']} features against train faces: drawn {1000 * kid['drawn']:.1f}, "
                     f"real {res['split']} faces {1000 * kid['real_faces']:.1f}.")
    return "\n".join(lines) + "\n"


def _print_realism(console, res: dict) -> None:
    from rich.table import Table
    r = res.get("realism")
    if not r:
        return
    two, kid = r.get("two_sample") or {}, r.get("kid") or {}
    side = res.get("alongside_judge")
    lo, hi = r["artifact_band"]
    t = Table(title=f"realism of the default edits (judge: {res['judges']['scoring']}; artifact band {lo:g}..{hi:g})")
    cols = ["attribute", "judged success", "realistic success", *([f"realistic ({side['judge']})"] if side else []),
            "artifact ratio (median)", "in band", "two-sample acc", "KID x1000"]
    for c in cols:
        t.add_column(c, justify="right" if c != "attribute" else "left")
    for a in res["attributes"]:
        ar = r["artifact_ratio"]["per_attribute"][a]
        k = (kid.get("per_attribute") or {}).get(a)
        t.add_row(a, f"{r['edit_success_judged']['per_attribute'][a]:.1%}",
                  f"{r['edit_success_realistic']['per_attribute'][a]:.1%}",
                  *([f"{side['edit_success_realistic']['per_attribute'][a]:.1%}"] if side else []),
                  f"{ar['median']:.3f}", f"{ar['in_band']:.1%}",
                  f"{two['per_attribute'][a]:.1%}" if "per_attribute" in two else "-",
                  f"{1000 * k:.2f}" if k is not None else "-")
    t.add_row("[bold]mean (13 standard)", f"{r['edit_success_judged']['mean_standard13']:.1%}",
              f"{r['edit_success_realistic']['mean_standard13']:.1%}",
              *([f"{side['edit_success_realistic']['mean_standard13']:.1%}"] if side else []), "", "",
              f"{two['mean_standard13']:.1%}" if "per_attribute" in two else "-",
              f"{1000 * kid['mean_standard13']:.2f}" if "per_attribute" in kid else "-")
    console.print(t)
    if "per_attribute" in two:
        console.print(f"two-sample test ({two['folds']}-fold by {two['split_by']}): reconstructions vs real "
                      f"{two['reconstruction']:.1%} (50% = indistinguishable), {two['seconds']:.0f} s")
    else:
        console.print(f"two-sample test skipped: {two.get('skipped')}")
    if "per_attribute" in kid:
        console.print(f"KID x1000 in {kid['features']} features: real faces {1000 * kid['real_faces']:.2f}, "
                      f"raw reconstructions {1000 * kid['reconstruction']:.2f}")
    else:
        console.print(f"KID skipped: {kid.get('skipped')}")
    if side:
        console.print(f"{side['judge']} alongside: judged {side['edit_success_judged']['mean_standard13']:.1%}, realistic "
                      f"{side['edit_success_realistic']['mean_standard13']:.1%}, disturbance "
                      f"{side['edit_disturbance']['mean_standard13']:.1%}, accuracy on real "
                      f"{side['judge_accuracy_on_real']['mean_standard13']:.1%}")
    for row in targets(res):
        mark = {True: "[green]met[/]", False: "[red]not met[/]", None: "not measured"}[row["met"]]
        console.print(f"target {row['target']} {row['wants']}: {row['value']} {mark}")
