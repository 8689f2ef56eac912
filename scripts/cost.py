#!/usr/bin/env python
"""results/perf.csv -> results/cost.csv: queries per dollar and cost reduction vs bf16.

    python scripts/cost.py results/perf.csv --gpu-types '{"cpu": {"price_per_hour": 1.0}}' \\
        --model-gpus '{"tiny-llama": 0}' --output /tmp/cost.csv
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from quantstudy import atomic  # noqa: E402
from quantstudy.cost import FIELDS, cost_rows  # noqa: E402
from quantstudy.tables import read_csv, to_csv  # noqa: E402

log = logging.getLogger("cost")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("perf_csv")
    ap.add_argument("--gpu-types", required=True, help="JSON {gpu: {price_per_hour: USD per GPU-hour}}")
    ap.add_argument("--model-gpus", required=True, help="JSON {model: GPUs per server}")
    ap.add_argument("--output", required=True)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        rows = cost_rows(read_csv(args.perf_csv), json.loads(args.gpu_types), json.loads(args.model_gpus))
    except KeyError as e:
        log.error("%s", e.args[0])
        return 1
    atomic.write_text(args.output, to_csv(rows, FIELDS))
    log.info("%d cost rows", len(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
