"""The Hugging Face backend of the engine steps (evaluate, generate): transformers +
compressed-tensors in torch eager mode, for checkpoints the vLLM engine cannot serve (int8
weight-only, NVFP4, FP8_BLOCK on a CPU without AMX: docs/design/scheme-catalogue.md).

What runs, read from transformers 5.19 / compressed-tensors 0.17 (the serve env) and checked
on the fixture's w8a8-fp and w4a16-int checkpoints: `from_pretrained` loads a
compressed-tensors checkpoint with its weights still compressed (FP8 tensors, packed int4);
a forward pre-hook decompresses every quantized Linear to the model dtype on the first
forward pass and removes itself (CompressedTensorsConfig's default `dequantize=False`,
ModelCompressor.add_decompress_hook). The modules are then DECOMPRESSED, so the wrapped
forward skips weight fake-quantization but still quantize-dequantizes (QDQ) the input
activations a scheme quantizes (dynamic scales computed per call, static scales loaded):
compressed_tensors/quantization/lifecycle/forward.py `set_forward_quantized`. The matmul
itself is a bf16 matmul. transformers' real FP8 kernels (`use_optimized_inference`) are
opt-in and need CUDA sm >= 89, so they are never used here, on a GPU either. Accuracy is
therefore the format's numerics emulated, not its kernels; speed means nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

BACKENDS = ("vllm", "hf")
DEFAULT_BACKEND = "vllm"
DEFAULT_DTYPE = "bfloat16"


def add_backend_arg(ap) -> None:
    ap.add_argument(
        "--backend",
        choices=BACKENDS,
        default=DEFAULT_BACKEND,
        help="vllm: the vLLM engine (default); hf: transformers + compressed-tensors in torch eager mode, "
        "for formats vLLM cannot serve (weights dequantized to bf16, activations fake-quantized)",
    )


def device() -> str:
    """Where the hf backend runs: the GPU when torch sees one, else the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def dtype(engine: dict) -> str:
    """The compute dtype: the engine block's `dtype` (the one vLLM argument with the same
    meaning in transformers), bfloat16 if unset."""
    return str(engine.get("dtype") or DEFAULT_DTYPE)


def _args_text(args: dict | None, activations: bool = False) -> str:
    if not args:
        return ""
    text = f"{args.get('num_bits')}-bit {args.get('type')} per-{args.get('strategy')}"
    if args.get("group_size"):
        text += f" {args['group_size']}"
    if activations:
        text += " dynamic" if args.get("dynamic") else " static"
    return text


def served_as(model_dir: str, compute_dtype: str = DEFAULT_DTYPE) -> str:
    """What the hf backend actually computes for this checkpoint, in words (recorded in the
    result, like perf's served_as): see the module doc."""
    try:
        cfg = json.loads((Path(model_dir) / "config.json").read_text())
    except (OSError, ValueError):
        cfg = {}
    q = cfg.get("quantization_config")
    if not q:
        return f"unquantized, {compute_dtype} (transformers, torch eager)"
    if q.get("quant_method") != "compressed-tensors":
        return f"{q.get('quant_method')} checkpoint as transformers loads it ({compute_dtype}, torch eager)"
    groups = list((q.get("config_groups") or {}).values())
    formats = sorted({g.get("format") or q.get("format") or "?" for g in groups}) or [q.get("format") or "?"]
    weights = sorted({_args_text(g.get("weights")) for g in groups if g.get("weights")})
    acts = sorted({_args_text(g.get("input_activations"), True) for g in groups if g.get("input_activations")})
    text = (
        f"compressed-tensors {'/'.join(formats)}: weights ({'; '.join(weights) or 'unquantized'}) "
        f"decompressed to {compute_dtype} on the first forward, {compute_dtype} matmuls (transformers, torch eager); "
    )
    if acts:
        text += f"input activations fake-quantized (QDQ, {'; '.join(acts)})"
    else:
        text += "activations not quantized"
    return text
