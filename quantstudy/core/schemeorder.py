"""The order and colours of schemes: one source of truth for every table, figure and guideline.

Scheme names are the config's data (`schemes:`, any number, any names; `bf16` is the
baseline). Every entry point that orders or colours schemes gets that list as
`--schemes '["bf16", ...]'` (`add_schemes_arg`) and orders with `scheme_key(order)`:
- a scheme in the list sorts by its position there;
- bf16 left out of the list still comes first (it is the baseline every table starts from);
- any other scheme absent from the list sorts after the listed ones, by name.

Colours (`scheme_colors`): bf16 keeps its grey; every other scheme takes the next colour of a
qualitative palette in that order (matplotlib's tab10, then the light halves of tab20, then
tab20b: 38 distinct colours, none grey, cycling beyond), so any number of schemes plot and a
scheme keeps its colour in every figure drawn from the same order. Stdlib only.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Sequence

from quantstudy.core import cli
from quantstudy.core.config import BASELINE

BASELINE_COLOR = "#4d4d4d"
# matplotlib's tab10 without its grey, the light halves of tab20 without its grey, then tab20b.
PALETTE = (
    ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf"]
    + ["#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5"]
    + ["#393b79", "#5254a3", "#6b6ecf", "#9c9ede", "#637939", "#8ca252", "#b5cf6b", "#cedb9c", "#8c6d31"]
    + ["#bd9e39", "#e7ba52", "#e7cb94", "#843c39", "#ad494a", "#d6616b", "#e7969c", "#7b4173", "#a55194"]
    + ["#ce6dbd", "#de9ed6"]
)


def scheme_key(order: Sequence[str]) -> Callable[[str], tuple]:
    """Sort key of scheme names: the position in `order` (the config's `schemes`), bf16 first
    when the list leaves it out, then every unlisted scheme by name."""
    position = {s: i for i, s in enumerate(order)}
    unlisted = len(position)

    def key(s: str) -> tuple:
        if s in position:
            return (position[s], s)
        return (-1, s) if s == BASELINE else (unlisted, s)

    return key


def ordered(schemes: Iterable[str], order: Sequence[str]) -> list[str]:
    """The distinct names of `schemes`, in scheme order."""
    return sorted(set(schemes), key=scheme_key(order))


def scheme_colors(order: Sequence[str], present: Iterable[str] = ()) -> dict[str, str]:
    """{scheme: colour} for every scheme of `order` and of `present` (unlisted ones, e.g. from
    a hand-made CSV, take the colours after the listed ones, by name): bf16 grey, the others
    the palette in scheme order."""
    out = {}
    for s in ordered([*order, *present], order):
        out[s] = BASELINE_COLOR if s == BASELINE else PALETTE[(len(out) - (BASELINE in out)) % len(PALETTE)]
    return out


def schemes_json(text: str) -> list[str]:
    """argparse `type=` of --schemes: a JSON list of distinct scheme names."""
    value = cli.json_arg(text)
    if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value):
        raise argparse.ArgumentTypeError(f"not a JSON list of scheme names: {text[:120]!r}")
    if len(set(value)) != len(value):
        raise argparse.ArgumentTypeError(f"a scheme is listed twice: {text[:120]!r}")
    return value


def add_schemes_arg(ap: argparse.ArgumentParser) -> None:
    """--schemes, the config's `schemes` list as JSON: the order (and colours) of every scheme."""
    ap.add_argument(
        "--schemes",
        type=schemes_json,
        required=True,
        help='JSON list of schemes in config order (config `schemes`), e.g. \'["bf16", "int8", "int4"]\': '
        "orders tables and figures; unlisted schemes come after, by name",
    )
