"""Quality tiers: which attributes' edits the model does well enough to offer plainly ("stable") and which
still often fail or look unreal ("experimental"). The manifest's "tiers" entry holds them with the figures
and the rule they came from (faceedit.export.tiers draws them from a validation evaluation); this module only
reads and checks that entry, so the torch-free runtime can use it.

Standard library only."""
from __future__ import annotations

STABLE = "stable"
EXPERIMENTAL = "experimental"
TIERS = (STABLE, EXPERIMENTAL)
EXPERIMENTAL_NOTE = "experimental: this model's edits of it often fail or do not look like a photo yet"


def tier_table(entry, names) -> dict[str, str]:
    """The manifest's "tiers" entry -> {attribute: tier} for every attribute it rates ({} without an entry:
    an older model says nothing about its attributes). Raises ValueError on an entry the engine cannot trust."""
    if entry is None:
        return {}
    if not isinstance(entry, dict) or not isinstance(entry.get("per_attribute"), dict):
        raise ValueError("\"tiers\" must be an object with a \"per_attribute\" object")
    table = {}
    for name, rated in entry["per_attribute"].items():
        if name not in names:
            raise ValueError(f"\"tiers\" rates {name!r}, which is not one of this model's attributes")
        tier = rated.get("tier") if isinstance(rated, dict) else rated
        if tier not in TIERS:
            raise ValueError(f"\"tiers\": {name} has tier {tier!r}; expected one of {', '.join(TIERS)}")
        table[name] = tier
    return table


def experimental_among(tiers: dict[str, str], names) -> list[str]:
    """The attributes of `names` that the model rates experimental, in the order given."""
    return [n for n in names if tiers.get(n) == EXPERIMENTAL]
