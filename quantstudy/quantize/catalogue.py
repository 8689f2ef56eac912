"""What the pinned llmcompressor offers: modifier names, their arguments, and the preset schemes.

The config check runs in Snakemake's env, which has no llmcompressor, so the catalogue is a
data file (quantstudy/data/llmcompressor.json) written from the pinned quantize env by

    .venv/quantize/bin/python -m quantstudy.quantize.catalogue --write

as quantstudy.core.knownnames does for vLLM. tests/unit/test_catalogue.py fails when the file
differs from the installed quantize env, so a version bump in envs/quantize.yaml cannot leave it
stale unnoticed. With it, a recipe's modifier names and argument names are checked before any
job (quantstudy.core.schemes); the quantize job then builds the modifiers themselves (pydantic
checks types and values) before it loads the model.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from quantstudy.core import cli

CATALOGUE_FILE = Path(__file__).parents[1] / "data" / "llmcompressor.json"
# Modifier fields that are lifecycle state, not arguments a recipe gives.
LIFECYCLE_FIELDS = {"index", "group", "start", "end", "update", "requires_calibration_data"}


def _args_dump(args) -> dict | None:
    if args is None:
        return None
    d = args.model_dump(mode="json", exclude_none=True)
    return {k: v for k, v in d.items() if k in ("num_bits", "type", "strategy", "group_size", "symmetric", "dynamic")}


def _requires_calibration(cls, quantizes: bool) -> bool | None:
    try:
        # A weight-only, data-free scheme: whatever calibration is still asked for is the modifier's.
        m = cls(scheme="W4A16", targets=["Linear"]) if quantizes else cls()
    except Exception:  # a modifier with required arguments
        return None
    return bool(getattr(m, "requires_calibration_data", False))


def installed() -> dict:
    """The catalogue from the installed llmcompressor and compressed-tensors (quantize env only)."""
    import importlib.metadata as md

    from compressed_tensors.quantization.quant_scheme import PRESET_SCHEMES
    from llmcompressor.modifiers.factory import ModifierFactory
    from llmcompressor.modifiers.quantization import QuantizationModifier

    ModifierFactory.refresh()
    modifiers = {}
    for name, cls in sorted({**ModifierFactory._main_registry, **ModifierFactory._experimental_registry}.items()):
        if name == "Modifier":  # the abstract base
            continue
        fields = sorted(f for f in cls.model_fields if f not in LIFECYCLE_FIELDS and not f.endswith("_"))
        quantizes = "config_groups" in cls.model_fields
        modifiers[name] = {
            "arguments": fields,
            "quantizes": quantizes,
            # Whether the modifier itself needs calibration data, whatever the scheme (GPTQ,
            # AWQ, SmoothQuant: yes; round-to-nearest QuantizationModifier: no), as
            # llmcompressor decides it; null where it cannot be built without arguments.
            "requires_calibration": _requires_calibration(cls, quantizes),
        }
    presets = {}
    for name, scheme in PRESET_SCHEMES.items():
        presets[name] = {
            "weights": _args_dump(scheme.get("weights")),
            "input_activations": _args_dump(scheme.get("input_activations")),
            # what llmcompressor itself decides (QuantizationMixin._set_requires_calibration_data)
            "requires_calibration": bool(QuantizationModifier(scheme=name).requires_calibration_data)
            if name != "UNQUANTIZED"
            else False,
        }
    return {
        "versions": {p: md.version(p) for p in ("llmcompressor", "compressed-tensors")},
        "modifiers": modifiers,
        "presets": presets,
    }


def load(path: Path = CATALOGUE_FILE) -> dict:
    return json.loads(path.read_text())


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    catalogue = installed()
    if "--write" in argv:
        CATALOGUE_FILE.write_text(json.dumps(catalogue, indent=1, sort_keys=True) + "\n")
    else:  # one line, last: llmcompressor's import may print before it
        print(json.dumps(catalogue, sort_keys=True))
    return 0


if __name__ == "__main__":
    cli.main(main)
