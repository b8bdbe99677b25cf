"""Draw the quality tier of every attribute from a validation evaluation of the model directory, by the rule
written down before any tier was drawn (docs/eval/tier-rule.txt): stable where realistic edit success,
judged edit success and the median artifact ratio all clear their bars; experimental otherwise. Looking at the
pictures may only demote an attribute (`demote`), never promote one."""
from __future__ import annotations

from pathlib import Path

from faceedit.core.tiers import EXPERIMENTAL, STABLE

RULE = {"realistic_success_min": 0.50, "judged_success_min": 0.60, "artifact_median_band": [0.85, 1.10],
        "text": "docs/eval/tier-rule.txt"}


def rate(realistic: float, judged: float, artifact_median: float) -> tuple[str, list[str]]:
    """One attribute's tier and the reasons it is not stable (empty when it is)."""
    lo, hi = RULE["artifact_median_band"]
    reasons = []
    if realistic < RULE["realistic_success_min"]:
        reasons.append(f"realistic success {realistic:.1%} < {RULE['realistic_success_min']:.0%}")
    if judged < RULE["judged_success_min"]:
        reasons.append(f"judged success {judged:.1%} < {RULE['judged_success_min']:.0%}")
    if not lo <= artifact_median <= hi:
        reasons.append(f"median artifact ratio {artifact_median:.2f} outside {lo:g}..{hi:g}")
    return (EXPERIMENTAL if reasons else STABLE), reasons


def draw_tiers(result: dict, source: Path, names, demote: dict[str, str] | None = None) -> dict:
    """The manifest's "tiers" entry from a `faceedit eval` JSON (`result`, read from `source`) with realism
    figures. demote: {attribute: why} for attributes the pictures show failing where the figures do not."""
    if result.get("split") != "val":
        raise ValueError(f"{source} measures the {result.get('split')!r} split: tiers are drawn on validation (--split val)")
    realism = result.get("realism") or {}
    try:
        realistic = realism["edit_success_realistic"]["per_attribute"]
        judged = realism["edit_success_judged"]["per_attribute"]
        artifact = realism["artifact_ratio"]["per_attribute"]
    except (KeyError, TypeError):
        raise ValueError(f"{source} has no realism figures (run `faceedit eval` without --no-realism)") from None
    missing = [n for n in names if n not in realistic or n not in judged or n not in artifact]
    if missing:
        raise ValueError(f"{source} has no realism figures for {', '.join(missing)}")
    demote = dict(demote or {})
    unknown = sorted(set(demote) - set(names))
    if unknown:
        raise ValueError(f"demote: {', '.join(unknown)} not among this model's attributes")
    per = {}
    for n in names:
        tier, reasons = rate(float(realistic[n]), float(judged[n]), float(artifact[n]["median"]))
        if n in demote:
            tier, reasons = EXPERIMENTAL, reasons + [f"by eye: {demote[n]}"]
        per[n] = {"tier": tier, "realistic_success": round(float(realistic[n]), 4),
                  "judged_success": round(float(judged[n]), 4),
                  "artifact_median": round(float(artifact[n]["median"]), 4)}
        if reasons:
            per[n]["why"] = "; ".join(reasons)
    judge = (result.get("judges") or {}).get("scoring", "the choice judge")
    return {"per_attribute": per, "rule": dict(RULE),
            "source": f"{Path(source).name}: `faceedit eval`, {result.get('split')} split, {result.get('faces')} faces, "
                      f"judge {judge}",
            "meaning": "stable: the edit usually takes and looks like a photo on validation faces; experimental: "
                       "it often fails or looks unreal (faceedit.core.tiers)"}
