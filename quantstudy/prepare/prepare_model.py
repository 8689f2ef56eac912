#!/usr/bin/env python
"""Make a bf16 safetensors checkpoint from a GGUF file (quantstudy/prepare/dequantize.py).

Rule `prepare_model` calls this; by hand (quantize env):

    .venv/quantize/bin/python -m quantstudy.prepare.prepare_model --source '{"path": "path/to/model.gguf"}' --output models/mymodel
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from quantstudy.core import cli, step
from quantstudy.core.runtime import offline_env, package_versions

log = logging.getLogger("prepare_model")


def main(argv=None) -> int:
    ap = cli.parser(__doc__)
    ap.add_argument(
        "--source",
        type=cli.json_arg,
        required=True,
        help='JSON, the config\'s models.<m>.gguf: {"path": GGUF file} or {"package": an installed package '
        'holding it (read, never imported), "file": its name there}',
    )
    ap.add_argument("--output", required=True, help="checkpoint directory to write (atomically)")
    ap.add_argument(
        "--check-prompt",
        default="What is the capital of France?",
        help="greedy answers of the GGUF and the converted model to this prompt must match",
    )
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args(argv)
    gguf = args.source.get("path")
    if "package" in args.source:
        import importlib.util

        spec = importlib.util.find_spec(args.source["package"])  # locates the folder; nothing is imported
        if spec is None or not spec.submodule_search_locations:
            raise cli.StepError(
                f"package '{args.source['package']}' (models.<m>.gguf.package) is not installed in this env"
            )
        gguf = str(Path(spec.submodule_search_locations[0]) / args.source["file"])
    if not gguf or not Path(gguf).is_file():
        raise cli.StepError(f"GGUF file '{gguf}' does not exist")
    offline_env()
    import torch

    torch.set_num_threads(args.threads)
    from quantstudy.prepare.dequantize import prepare

    started = time.time()
    meta = prepare(gguf, args.output, args.check_prompt or None)
    log.info(
        "wrote %s: %d parameters, answer to %r: %r, in %.1f s",
        args.output,
        meta["parameters"],
        args.check_prompt,
        meta.get("check", {}).get("answer"),
        time.time() - started,
    )
    log.info("versions: %s", package_versions(["transformers", "torch", "gguf"]))
    return 0


if __name__ == "__main__":
    step.run(main)  # supervised: a finished step cannot fail in teardown
