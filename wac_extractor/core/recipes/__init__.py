"""What a job computes: the recipe names, kept free of openeo so the plugin loads without it."""

from __future__ import annotations

# lcfm: the notebook's LCFM features (the default); monthly: composites for quick looks.
RECIPES = {
    "lcfm": "LCFM features: S1 VV/VH/VH_VV percentiles; S2 masked 6 bands + NDVI, dekad percentiles, monthly medians",
    "monthly": "Monthly composites: S2 median of 10 bands, S1 mean VV/VH in dB (quick looks)",
}
DEFAULT_RECIPE = "lcfm"
RECIPE_LABELS = {"lcfm": "LCFM features", "monthly": "Monthly composites (quick look)"}


def check_recipe(value) -> str:
    recipe = str(value).strip().lower()
    if recipe not in RECIPES:
        raise ValueError(f"recipe: {value!r} is not a known recipe; use one of {', '.join(RECIPES)}.")
    return recipe


def row_recipe(row) -> str:
    """The row's recipe; a notebook table without the column (or an empty cell) means ``lcfm``."""
    value = row.get("recipe") if hasattr(row, "get") else None
    if value is None or (isinstance(value, float) and value != value) or str(value).strip() == "":
        return DEFAULT_RECIPE
    return check_recipe(value)
