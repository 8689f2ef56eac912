"""Cost of serving: queries per dollar from measured throughput and a GPU-hour price.

queries per dollar = request throughput (req/s) x 3600 / (price per GPU-hour x GPUs)
cost reduction     = a scheme's queries per dollar / bf16's, same (model, gpu, use case, mode)
(the paper: "queries per dollar from on-demand GPU prices; cost reduction is the ratio to
bf16"). sync throughput is one request at a time (1 / latency); async is the saturated
rate; slo is the highest request rate within the use case's latency SLO (the cost of a query
at a load that keeps the latency target; none when no rate met it). A model on the CPU (gpus: 0) is priced as one unit of the `gpu_types` price.

The rule's entry point, also run by hand:

    results/perf.csv -> results/cost.csv: queries per dollar and cost reduction vs bf16.

        python -m quantstudy.perf.cost results/perf.csv --gpu-types '{"cpu": {"price_per_hour": 1.0}}' \\
            --model-gpus '{"tiny-llama": 0}' --output /tmp/cost.csv
"""

from __future__ import annotations

import json
import logging

from quantstudy.core import atomic, cli
from quantstudy.core.config import BASELINE
from quantstudy.core.tables import read_csv, to_csv

FIELDS = [
    "model",
    "scheme",
    "served_as",
    "gpu",
    "use_case",
    "mode",
    "gpus",
    "price_per_hour",
    "hourly_cost",
    "request_throughput",
    "request_throughput_cv",
    "output_throughput",
    "queries_per_dollar",
    "usd_per_million_output_tokens",
    "cost_reduction_vs_bf16",
]


def queries_per_dollar(request_throughput: float | None, hourly_cost: float) -> float | None:
    if request_throughput is None or hourly_cost is None or hourly_cost <= 0:
        return None
    return request_throughput * 3600.0 / hourly_cost


def cost_rows(perf_rows: list[dict], gpu_types: dict, model_gpus: dict) -> list[dict]:
    """One cost row per perf row (sync, and async at saturation).

    gpu_types: {gpu: {"price_per_hour": float per GPU}}; model_gpus: {model: GPUs it is served on}.
    """
    rows = []
    for p in perf_rows:
        if p["mode"] == "async" and p.get("rate_fraction") is not None:
            continue  # sweep points below saturation are not a serving capacity
        try:
            price = float(gpu_types[p["gpu"]]["price_per_hour"])
        except KeyError:
            raise KeyError(
                f"perf row {p['model']}/{p['scheme']}/{p['gpu']}: gpu type {p['gpu']!r} "
                f"has no price_per_hour in gpu_types"
            ) from None
        gpus = int(model_gpus.get(p["model"], 1) or 0)
        hourly = price * max(1, gpus)
        tok = p.get("output_throughput")
        rows.append(
            {
                "model": p["model"],
                "scheme": p["scheme"],
                "served_as": p.get("served_as") or p["scheme"],
                "gpu": p["gpu"],
                "use_case": p["use_case"],
                "mode": p["mode"],
                "gpus": gpus,
                "price_per_hour": price,
                "hourly_cost": hourly,
                "request_throughput": p.get("request_throughput"),
                "request_throughput_cv": p.get("request_throughput_cv"),
                "output_throughput": tok,
                "queries_per_dollar": queries_per_dollar(p.get("request_throughput"), hourly),
                "usd_per_million_output_tokens": hourly / (tok * 3600.0) * 1e6 if tok else None,
            }
        )
    base = {
        (r["model"], r["gpu"], r["use_case"], r["mode"]): r["queries_per_dollar"]
        for r in rows
        if r["scheme"] == BASELINE
    }
    for r in rows:
        b = base.get((r["model"], r["gpu"], r["use_case"], r["mode"]))
        q = r["queries_per_dollar"]
        r["cost_reduction_vs_bf16"] = q / b if (q is not None and b) else None
    return rows


log = logging.getLogger("cost")


def main(argv=None) -> int:
    ap = cli.parser(__doc__)
    ap.add_argument("perf_csv")
    ap.add_argument("--gpu-types", required=True, help="JSON {gpu: {price_per_hour: USD per GPU-hour}}")
    ap.add_argument("--model-gpus", required=True, help="JSON {model: GPUs per server}")
    ap.add_argument("--output", required=True)
    args = ap.parse_args(argv)
    try:
        rows = cost_rows(read_csv(args.perf_csv), json.loads(args.gpu_types), json.loads(args.model_gpus))
    except KeyError as e:
        raise cli.StepError(e.args[0]) from e
    atomic.write_text(args.output, to_csv(rows, FIELDS))
    log.info("%d cost rows", len(rows))
    return 0


if __name__ == "__main__":
    cli.main(main)
