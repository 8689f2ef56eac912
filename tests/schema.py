"""The config schema's defaults for a block, as validation fills them (the one source)."""

from pathlib import Path

import yaml

from quantstudy.core.config import fill_defaults

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "config/schema/config.schema.yaml").read_text())


def defaults(block: str) -> dict:
    """e.g. defaults("significance") == {"seed": 0, "n_resamples": 1000, "confidence": 0.95}."""
    return fill_defaults({}, SCHEMA, SCHEMA["properties"][block])


def with_defaults(config: dict) -> dict:
    """A copy of a config as validation leaves it: every schema default filled in."""
    import copy

    return fill_defaults(copy.deepcopy(config), SCHEMA)
