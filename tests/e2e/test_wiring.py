"""Every output of the study tied to its inputs: each result names the checkpoint of its
own scheme, that checkpoint is what its recipe makes, each quantized scheme measurably
differs from bf16, and the summary, the guideline and the report's tables equal what the
raw files give.

Expected values are recomputed here from the raw files (eval JSONs, lm-eval's per-item
samples, generation logprobs, engine logs, cost.csv) with plain python, never with the
code under test (quantstudy.summary.summary, quantstudy.perf.guideline, quantstudy.report.reporthtml, ...).
Each check is a function of a study directory returning its problems, so the same checks
can be run on a deliberately miswired copy (test_miswired_study_fails_the_wiring_checks).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
import statistics
from html.parser import HTMLParser
from pathlib import Path

import yaml

BASELINE = "bf16"


# ------------------------------------------------------------------------- raw readers


def load_config(root: Path) -> dict:
    return yaml.safe_load((root / "config/config.yaml").read_text())


def read_json(path: Path):
    return json.loads(path.read_text())


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def number(x) -> float | None:
    return None if x in ("", None) else float(x)


def deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


DATA = Path(__file__).resolve().parents[2] / "quantstudy/data"
# llmcompressor's preset schemes and modifiers, as written from the installed quantize env
# (tests/unit/test_schemes.py keeps the file equal to it); the support matrix is data too.
CATALOGUE = json.loads((DATA / "llmcompressor.json").read_text())
SUPPORT = yaml.safe_load((DATA / "support_matrix.yaml").read_text())


def recipe_of(cfg: dict, model: str, scheme: str) -> dict:
    """The scheme's recipe with the model's overrides: a `modifiers` mapping merges into the
    modifier of each class, anything else deep-merges (docs/configuration.md)."""
    recipe = dict(cfg["recipes"][scheme])
    over = dict(cfg["models"][model].get("recipe_overrides", {}).get(scheme, {}))
    mods = over.pop("modifiers", None)
    if isinstance(mods, list):
        recipe["modifiers"] = mods
    elif mods:
        recipe["modifiers"] = [
            {name: deep_merge(args or {}, mods.get(name, {})) for name, args in item.items()}
            for item in recipe["modifiers"]
        ]
    return deep_merge(recipe, over)


def recipe_quantization(recipe: dict) -> dict:
    """What the recipe's last quantizing modifier asks for: weights, activations, KV cache, ignore."""
    q = {"weights": None, "input_activations": None, "kv_cache_scheme": None, "ignore": []}
    for item in recipe["modifiers"]:
        for name, args in item.items():
            args = args or {}
            if not CATALOGUE["modifiers"][name]["quantizes"]:
                continue
            if isinstance(args.get("scheme"), str):
                group = CATALOGUE["presets"][args["scheme"].upper()]
            else:
                group = next(iter(args["config_groups"].values()))
            q = {
                "weights": group.get("weights"),
                "input_activations": group.get("input_activations"),
                "kv_cache_scheme": args.get("kv_cache_scheme"),
                "ignore": args.get("ignore", []),
            }
    return q


def matrix_format(q: dict) -> str:
    """The support matrix's name of the weights/activations format (a plain reading of the file's
    header: w<bits>a<bits>-<family>)."""
    w, a = q["weights"], q["input_activations"]
    if w["type"] == "float" and w["num_bits"] == 4:
        return f"w4a{4 if a else 16}-{'nvfp4' if w['strategy'] == 'tensor_group' else 'mxfp4'}"
    if w["type"] == "float":
        return "w8a16-fp8" if not a else ("w8a8-fp8-block" if w["strategy"] == "block" else "w8a8-fp8")
    if not a:
        return f"w{w['num_bits']}a16-int"
    return f"w{w['num_bits']}a{a['num_bits']}-{'int' if a['type'] == 'int' else 'fp8'}"


def served_here(cfg: dict, model: str, scheme: str, arch: str) -> bool:
    """Whether the support matrix (with the config's overrides) lets `arch` serve the scheme."""
    if scheme == BASELINE:
        return True
    table = deep_merge(SUPPORT, cfg.get("support_matrix") or {})
    q = recipe_quantization(recipe_of(cfg, model, scheme))
    parts = [table["formats"][matrix_format(q)]]
    if q["kv_cache_scheme"]:
        parts.append(table["kv_cache"]["fp8"])
    return all(p["support"].get(arch, "unsupported") != "unsupported" for p in parts)


def backend_of(cfg: dict, model: str, scheme: str) -> str:
    """The local study's evaluation hardware is the CPU (no GPU types routed)."""
    return "vllm" if served_here(cfg, model, scheme, "cpu") else "hf"


def expected_checkpoint(cfg: dict, model: str, scheme: str) -> str:
    """bf16 is the base model itself; every other scheme its own quantized checkpoint."""
    return cfg["models"][model]["path"] if scheme == BASELINE else f"results/models/{model}/{scheme}"


def quantized(cfg: dict) -> list[str]:
    return [s for s in cfg["schemes"] if s != BASELINE]


def perf_jobs(cfg: dict) -> list[tuple[str, str, str]]:
    """(model, scheme, gpu) of every serving benchmark the config asks for: the GPU type must
    serve the scheme (the support matrix)."""
    perf = cfg.get("performance")
    if not perf:
        return []
    return [
        (m, s, g)
        for m, spec in cfg["models"].items()
        for g in spec.get("gpu_types", perf["gpu_types"])
        for s in spec.get("perf_schemes", cfg["schemes"])
        if served_here(cfg, m, s, cfg["gpu_types"][g].get("arch", "cpu"))
    ]


def expected_format(q: dict) -> str:
    """compressed-tensors' format for a recipe: FP4 has its own packing; weight-only integer
    weights are packed; otherwise 8-bit float weights are float-quantized and integer ones
    int-quantized."""
    w = q["weights"]
    if w["type"] == "float" and w["num_bits"] == 4:
        return "nvfp4-pack-quantized" if w["strategy"] == "tensor_group" else "mxfp4-pack-quantized"
    if w["type"] == "int" and not q["input_activations"]:
        return "pack-quantized"
    return "float-quantized" if w["type"] == "float" else "int-quantized"


def split_metric(metric: str) -> tuple[str, str]:
    name, _, filt = metric.partition(",")
    return name, filt


def item_values(samples: list[dict], metric: str) -> dict:
    """{doc_id: value of `metric` ("name,filter")} from lm-eval's per-item rows."""
    name, filt = split_metric(metric)
    return {r["doc_id"]: float(r[name]) for r in samples if r.get("filter", filt) == filt}


def close(a, b, tol) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= tol


# ----------------------------------------------------------- 1. checkpoint of each output


def checkpoint_problems(root: Path) -> list[str]:
    """Every eval JSON, generation meta and perf manifest names its own scheme's checkpoint,
    and that checkpoint's quantization config is what the scheme's recipe makes."""
    cfg, problems = load_config(root), []

    def check(path: Path, model, scheme, extra=()):
        if not path.is_file():
            problems.append(f"{path.relative_to(root)}: missing")
            return
        d = read_json(path)
        want = expected_checkpoint(cfg, model, scheme)
        if d.get("checkpoint") != want:
            problems.append(f"{path.relative_to(root)}: checkpoint {d.get('checkpoint')!r}, want {want!r}")
        for k, v in (("model", model), ("scheme", scheme), *extra):
            if d.get(k) != v:
                problems.append(f"{path.relative_to(root)}: {k} {d.get(k)!r}, want {v!r}")

    for model in cfg["models"]:
        for scheme in cfg["schemes"]:
            for task in cfg["tasks"]:
                check(root / f"results/eval/{model}/{scheme}/{task}.json", model, scheme, [("task", task)])
            if cfg.get("similarity"):
                check(root / f"results/generations/{model}/{scheme}.meta.json", model, scheme)
    for model, scheme, gpu in perf_jobs(cfg):
        check(root / f"results/perf/{model}/{scheme}/{gpu}/manifest.json", model, scheme, [("gpu", gpu)])

    for model, spec in cfg["models"].items():
        base = read_json(root / spec["path"] / "config.json")
        if "quantization_config" in base:
            problems.append(f"{spec['path']}: the bf16 base model has a quantization_config")
        for scheme in quantized(cfg):
            problems += format_problems(root, cfg, model, scheme)
    return problems


def format_problems(root: Path, cfg: dict, model: str, scheme: str) -> list[str]:
    ckpt = expected_checkpoint(cfg, model, scheme)
    path = root / ckpt / "config.json"
    if not path.is_file():
        return [f"{ckpt}: no config.json"]
    qc = read_json(path).get("quantization_config")
    if not qc:
        return [f"{ckpt}: config.json has no quantization_config"]
    q, out = recipe_quantization(recipe_of(cfg, model, scheme)), []
    if qc.get("quant_method") != "compressed-tensors":
        out.append(f"{ckpt}: quant_method {qc.get('quant_method')!r}")
    if qc.get("format") != expected_format(q):
        out.append(f"{ckpt}: format {qc.get('format')!r}, the recipe makes {expected_format(q)!r}")
    groups = list(qc.get("config_groups", {}).values())
    if len(groups) != 1:
        return out + [f"{ckpt}: {len(groups)} config groups, want 1"]
    g = groups[0]
    for side in ("weights", "input_activations"):
        want, got = q.get(side), g.get(side)
        if not want:
            if got:
                out.append(f"{ckpt}: {side} quantized, the recipe does not quantize them")
            continue
        if not got:
            out.append(f"{ckpt}: {side} not quantized, the recipe does")
            continue
        for k, v in want.items():
            if k != "observer" and got.get(k) != v:  # the observer is a calibration choice, not stored
                out.append(f"{ckpt}: {side}.{k} = {got.get(k)!r}, recipe {v!r}")
    want_kv, got_kv = q["kv_cache_scheme"], qc.get("kv_cache_scheme")
    if bool(want_kv) != bool(got_kv) or any(got_kv.get(k) != v for k, v in (want_kv or {}).items()):
        out.append(f"{ckpt}: kv_cache_scheme {got_kv!r}, recipe {want_kv!r}")
    for name in q["ignore"]:
        if name not in qc.get("ignore", []):
            out.append(f"{ckpt}: {name} not in ignore {qc.get('ignore')}")
    return out


# The engine's own record of what it loaded: vLLM logs its config when the engine starts.
ENGINE_LINE = re.compile(r"engine \(v[^)]*\) with config: model='([^']*)'.*?quantization=([\w-]+)")
# The hf backend's: lm-eval's model arguments (evaluate; what the checkpoint holds is checked
# by format_problems) and generate's own line.
HF_EVAL_LINE = re.compile(r"Initializing hf model, with arguments: \{'pretrained': '([^']*)'")
HF_GEN_LINE = re.compile(r"hf backend loaded '([^']*)' \(quantization=([\w-]+)\)")


def engine_problems(root: Path) -> list[str]:
    """Every engine a job started (evaluate, generate, the perf server) loaded its scheme's
    checkpoint, quantized (compressed-tensors) exactly when the scheme is."""
    cfg, problems = load_config(root), []
    logs = []
    for model in cfg["models"]:
        for scheme in cfg["schemes"]:
            # One evaluate job per (model, scheme): its log records the engine of every task.
            logs.append((model, scheme, root / f"results/logs/evaluate/{model}/{scheme}.log"))
            if cfg.get("similarity"):
                logs.append((model, scheme, root / f"results/logs/generate/{model}/{scheme}.log"))
    logs += [(m, s, root / f"results/logs/perf/{m}/{s}/{g}.server.log") for m, s, g in perf_jobs(cfg)]
    for model, scheme, log in logs:
        rel = log.relative_to(root)
        text = log.read_text(errors="replace") if log.is_file() else ""
        engines = ENGINE_LINE.findall(text)
        if backend_of(cfg, model, scheme) == "hf" and ".server." not in log.name:
            # lm-eval's hf model (evaluate) or transformers (generate) instead of a vLLM engine
            engines = HF_GEN_LINE.findall(text) + [(m, "compressed-tensors") for m in HF_EVAL_LINE.findall(text)]
        if not engines:
            problems.append(f"{rel}: no engine start recorded")
        want = expected_checkpoint(cfg, model, scheme)
        want_q = "None" if scheme == BASELINE else "compressed-tensors"
        for loaded, quant in engines:
            if loaded != want or quant != want_q:
                problems.append(
                    f"{rel}: the engine loaded {loaded!r} (quantization={quant}), want {want!r} (quantization={want_q})"
                )
    return problems


def evaluation_engine_problems(root: Path) -> list[str]:
    """One model load per (model, scheme) for all of its tasks (the default config gives no
    task engine settings of its own), and lm-eval's request cache of each scheme its own:
    its cache key is the request only, so a shared one would serve bf16's answers."""
    cfg, problems, caches = load_config(root), [], {}
    for model in cfg["models"]:
        for scheme in cfg["schemes"]:
            log = root / f"results/logs/evaluate/{model}/{scheme}.log"
            text = log.read_text(errors="replace") if log.is_file() else ""
            # vLLM's own record of each engine it builds; lm-eval's of each hf model.
            starts = len((HF_EVAL_LINE if backend_of(cfg, model, scheme) == "hf" else ENGINE_LINE).findall(text))
            if starts != 1:
                problems.append(f"{log.relative_to(root)}: {starts} model loads for {len(cfg['tasks'])} tasks, want 1")
            for task in cfg["tasks"]:
                rel = f"results/eval/{model}/{scheme}/{task}.json"
                cache = ((read_json(root / rel).get("lm_eval") or {}).get("config") or {}).get("use_cache")
                if not cache or not cache.startswith(f"results/cache/evaluate/{model}/{scheme}/"):
                    problems.append(f"{rel}: request cache {cache!r} is not under its own (model, scheme)")
                caches.setdefault(cache, set()).add((model, scheme))
    problems += [f"request cache {c} shared by {sorted(owners)}" for c, owners in caches.items() if len(owners) > 1]
    return problems


# ----------------------------------------------- 2. each quantized scheme differs from bf16


def tensor_digest(folder: Path) -> str:
    """sha256 over the folder's safetensors files (their bytes: header and tensors)."""
    h = hashlib.sha256()
    for f in sorted(folder.glob("*.safetensors")):
        h.update(f.read_bytes())
    return h.hexdigest()


def loglikelihoods(x) -> list:
    """The (log-likelihood, is-greedy) pairs in an lm-eval `resps` value (multiple-choice
    items; lm-eval may write them as strings); generated text has none."""
    if isinstance(x, (list, tuple)):
        if len(x) == 2 and str(x[1]) in ("True", "False", "true", "false"):
            try:
                return [(float(x[0]), str(x[1]))]
            except (TypeError, ValueError):
                pass
        return [p for item in x for p in loglikelihoods(item)]
    return []


def difference_problems(root: Path) -> list[str]:
    """Each scheme's results are its own: no two schemes share checkpoint tensors or the
    log-likelihoods of an evaluation, every quantized scheme's next-token distributions
    differ from bf16's (logprobs, KL > 0), and none answers every item exactly as bf16."""
    cfg, problems = load_config(root), []
    schemes = cfg["schemes"]
    for model in cfg["models"]:
        digests = {s: tensor_digest(root / expected_checkpoint(cfg, model, s)) for s in schemes}
        resps = {
            (s, t): {r["doc_id"]: r["resps"] for r in read_jsonl(root / f"results/eval/{model}/{s}/{t}.samples.jsonl")}
            for s in schemes
            for t in cfg["tasks"]
        }
        for i, a in enumerate(schemes):
            for b in schemes[i + 1 :]:
                if digests[a] == digests[b]:
                    problems.append(f"{model}: {a} and {b} checkpoints hold byte-identical tensors")
                for t in cfg["tasks"]:
                    # Greedy answers may well agree; log-likelihoods of different weights are never
                    # bit-identical (they move by ~0.01-0.1 here).
                    if resps[(a, t)] == resps[(b, t)] and any(loglikelihoods(v) for v in resps[(a, t)].values()):
                        problems.append(f"{model}/{t}: {a} and {b} have identical log-likelihoods on every item")
        for scheme in quantized(cfg):
            if all(resps[(scheme, t)] == resps[(BASELINE, t)] for t in cfg["tasks"]):
                problems.append(f"{model}/{scheme}: every evaluation response equals bf16's, item by item")
            if cfg.get("similarity"):
                gen = root / f"results/generations/{model}"
                if (gen / f"{scheme}.logprobs.jsonl").read_bytes() == (gen / f"{BASELINE}.logprobs.jsonl").read_bytes():
                    problems.append(f"{model}/{scheme}: generation logprobs identical to bf16's")
                kl = read_json(root / f"results/similarity/{model}/{scheme}.json")["kl"]["mean_per_token"]
                if not kl > 0:
                    problems.append(f"{model}/{scheme}: KL from bf16 is {kl}, want > 0")
    return problems


# ------------------------------------------------------- 3. summary.csv from the raw files


def expected_summary(root: Path) -> dict[tuple, dict]:
    """{(model, scheme, level, task, metric-or-None): row} recomputed from eval JSONs and
    per-item samples. Suite rows: key metric None (their name is a label)."""
    cfg = load_config(root)
    rows, primary = {}, {}
    for model in cfg["models"]:
        for scheme in cfg["schemes"]:
            for task, spec in cfg["tasks"].items():
                ev = read_json(root / f"results/eval/{model}/{scheme}/{task}.json")
                samples = read_jsonl(root / f"results/eval/{model}/{scheme}/{task}.samples.jsonl")
                for metric in spec["metrics"]:
                    vals = list(item_values(samples, metric).values())
                    name, filt = split_metric(metric)
                    raw = ev["lm_eval"]["results"]  # lm-eval's own aggregate, beside our items
                    rows[(model, scheme, "task", task, metric)] = {
                        "score": statistics.fmean(vals),
                        "n": len(samples),
                        "stderr": statistics.stdev(vals) / math.sqrt(len(vals)),
                        "lm_eval_score": raw[metric],
                        "lm_eval_stderr": raw.get(f"{name}_stderr,{filt}"),
                        "eval_json_n": ev["n_samples"],
                    }
                primary[(model, scheme, task)] = rows[(model, scheme, "task", task, spec["metrics"][0])]
    for (model, _scheme, level, task, metric), r in list(rows.items()):
        base = rows[(model, BASELINE, level, task, metric)]["score"]
        r["bf16_score"] = base
        r["bf16_stderr"] = rows[(model, BASELINE, level, task, metric)]["stderr"]
        r["recovery_pct"] = r["score"] / base * 100 if base else None
    suites: dict[str, list[str]] = {}
    for task, spec in cfg["tasks"].items():
        suites.setdefault(spec["suite"], []).append(task)
    for model in cfg["models"]:
        for scheme in cfg["schemes"]:
            for suite, tasks in suites.items():
                own = [primary[(model, scheme, t)] for t in tasks]
                ref = [primary[(model, BASELINE, t)] for t in tasks]
                score = statistics.fmean(p["score"] for p in own)
                base = statistics.fmean(p["score"] for p in ref)
                rows[(model, scheme, "suite", suite, None)] = {
                    "score": score,
                    "bf16_score": base,
                    "n": sum(p["n"] for p in own),
                    "bf16_stderr": math.sqrt(sum(p["stderr"] ** 2 for p in ref)) / len(ref),
                    # ratio of the two averages, not the average of the ratios (as the paper does)
                    "recovery_pct": score / base * 100 if base else None,
                    "stderr": math.sqrt(sum(p["stderr"] ** 2 for p in own)) / len(own),
                    "tasks": tasks,
                }
    return rows


def flips_from_samples(root: Path, model: str, scheme: str, task: str, metric: str) -> dict:
    ref = item_values(read_jsonl(root / f"results/eval/{model}/{BASELINE}/{task}.samples.jsonl"), metric)
    own = item_values(read_jsonl(root / f"results/eval/{model}/{scheme}/{task}.samples.jsonl"), metric)
    both = sorted(set(ref) & set(own))
    c2w = sum(1 for d in both if ref[d] == 1.0 and own[d] != 1.0)
    w2c = sum(1 for d in both if ref[d] != 1.0 and own[d] == 1.0)
    return {
        "n": len(both),
        "correct_to_wrong": c2w,
        "wrong_to_correct": w2c,
        "flips": c2w + w2c,
        "flip_rate": (c2w + w2c) / len(both),
    }


def summary_problems(root: Path) -> list[str]:
    cfg, problems = load_config(root), []
    want = expected_summary(root)
    got_rows = read_rows(root / "results/summary.csv")
    seen = set()
    for r in got_rows:
        if r["level"] == "similarity":
            continue
        key = (r["model"], r["scheme"], r["level"], r["task"], r["metric"] if r["level"] == "task" else None)
        where = "summary.csv " + "/".join(str(k) for k in key if k)
        if key not in want:
            problems.append(f"{where}: a row no eval result gives")
            continue
        if key in seen:
            problems.append(f"{where}: duplicated")
        seen.add(key)
        w = want[key]
        for col, tol in (
            ("score", 1e-6),
            ("bf16_score", 1e-6),
            ("stderr", 1e-6),
            ("bf16_stderr", 1e-6),
            ("recovery_pct", 1e-6),
        ):
            if not close(number(r[col]), w[col], tol):
                problems.append(f"{where}: {col} {r[col]}, recomputed {w[col]}")
        if int(r["n"]) != w["n"]:
            problems.append(f"{where}: n {r['n']}, the samples have {w['n']}")
        if r["level"] == "task":
            if not close(w["score"], w["lm_eval_score"], 1e-9) or w["n"] != w["eval_json_n"]:
                problems.append(
                    f"{where}: per-item mean {w['score']} (n={w['n']}) disagrees with lm-eval's "
                    f"{w['lm_eval_score']} (n={w['eval_json_n']})"
                )
            if w["lm_eval_stderr"] is not None and not close(w["stderr"], w["lm_eval_stderr"], 1e-9):
                problems.append(f"{where}: per-item stderr {w['stderr']} vs lm-eval's {w['lm_eval_stderr']}")
        else:
            named = re.findall(r"([\w-]+):", r["metric"])
            if named != w["tasks"]:
                problems.append(f"{where}: averages {named}, the suite has {w['tasks']}")
    for key in sorted(set(want) - seen, key=str):
        problems.append(f"summary.csv: no row for {key}")

    if cfg.get("similarity"):
        problems += similarity_summary_problems(root, cfg, got_rows)
    return problems


def similarity_summary_problems(root: Path, cfg: dict, got_rows: list[dict]) -> list[str]:
    """summary.csv's similarity rows are the similarity JSONs' numbers, and the flips in
    those JSONs are what the per-item eval samples of bf16 and the scheme give."""
    problems = []
    sim_rows = {(r["model"], r["scheme"], r["task"], r["metric"]): r for r in got_rows if r["level"] == "similarity"}
    for model in cfg["models"]:
        for scheme in quantized(cfg):
            s = read_json(root / f"results/similarity/{model}/{scheme}.json")
            if (s["model"], s["scheme"]) != (model, scheme):
                problems.append(f"similarity/{model}/{scheme}.json is about {s['model']}/{s['scheme']}")
            on = cfg["similarity"]["prompt_set"]
            want = {(on, m): v["mean"] for m, v in s["text"].items()}
            want[(on, "kl_per_token")] = s["kl"]["mean_per_token"]
            for task, spec in cfg["tasks"].items():
                metric = spec["metrics"][0]
                f = s["flips"][task]
                recomputed = flips_from_samples(root, model, scheme, task, metric)
                for k, v in recomputed.items():
                    if not close(float(f[k]), float(v), 1e-12):
                        problems.append(
                            f"similarity/{model}/{scheme}.json flips[{task}].{k} = {f[k]}, the eval samples give {v}"
                        )
                want[(task, f"flip_rate({metric})")] = recomputed["flip_rate"]
            for (task, metric), v in want.items():
                r = sim_rows.get((model, scheme, task, metric))
                if r is None:
                    problems.append(f"summary.csv: no similarity row {model}/{scheme}/{task}/{metric}")
                elif not close(number(r["score"]), v, 1e-6):
                    problems.append(
                        f"summary.csv similarity {model}/{scheme}/{task}/{metric}: {r['score']}, similarity JSON {v}"
                    )
    if any(r["scheme"] == BASELINE for r in got_rows if r["level"] == "similarity"):
        problems.append("summary.csv has similarity rows for bf16 (1 / 0 by construction)")
    return problems


# ------------------------------------------------------- 4. the guideline from its inputs


def lowest_suite_recovery(cfg: dict, summary: list[dict]) -> dict[tuple, float]:
    """{(model, scheme): lowest recovery over the (configured) suites}; bf16 = 100."""
    only = cfg.get("guideline", {}).get("suites") or None
    out: dict[tuple, float] = {}
    for r in summary:
        if r["level"] != "suite" or (only and r["suite"] not in only):
            continue
        rec = 100.0 if r["scheme"] == BASELINE else float(r["recovery_pct"])
        key = (r["model"], r["scheme"])
        out[key] = min(out.get(key, math.inf), rec)
    return out


def expected_guideline(root: Path) -> dict[tuple, dict]:
    """The documented rule (docs/method.md): per (model, gpu, mode, use case), the most queries per dollar among
    the schemes whose lowest suite recovery reaches the floor; ties to the higher recovery,
    then to the scheme the config lists first."""
    cfg = load_config(root)
    floor = cfg.get("guideline", {}).get("recovery_floor_pct", 99.0)
    recovery = lowest_suite_recovery(cfg, read_rows(root / "results/summary.csv"))
    # The documented tie-break order (docs/method.md, guideline.md): the config's `schemes`,
    # bf16 first if unlisted, any unlisted scheme after them by name.
    tie = list(cfg["schemes"])

    def order(s):
        return (tie.index(s) if s in tie else -1 if s == BASELINE else len(tie), s)

    groups: dict[tuple, list[dict]] = {}
    for c in read_rows(root / "results/cost.csv"):
        groups.setdefault((c["model"], c["gpu"], c["mode"], c["use_case"]), []).append(c)
    out = {}
    for key, cands in groups.items():
        eligible = [
            (c["scheme"], float(c["queries_per_dollar"]), recovery[(key[0], c["scheme"])], c)
            for c in cands
            if recovery.get((key[0], c["scheme"]), -math.inf) >= floor
            and c["queries_per_dollar"] != ""  # slo mode: no request rate met the SLO
        ]
        eligible.sort(key=lambda e: (-e[1], -e[2], order(e[0])))
        # Excluded: every scheme with a cost row or an accuracy result that is not eligible.
        known = {c["scheme"] for c in cands} | {s for m, s in recovery if m == key[0]}
        row = {
            "eligible": [e[0] for e in eligible],
            "floor": floor,
            "excluded": sorted(known - {e[0] for e in eligible}),
        }
        if eligible:
            row.update(
                recommended=eligible[0][0],
                queries_per_dollar=eligible[0][1],
                recovery_pct=eligible[0][2],
                cost_reduction_vs_bf16=float(eligible[0][3]["cost_reduction_vs_bf16"]),
            )
        if len(eligible) > 1:
            row.update(runner_up=eligible[1][0], margin_pct=(eligible[0][1] / eligible[1][1] - 1) * 100)
        out[key] = row
    return out


def guideline_problems(root: Path) -> list[str]:
    want, problems = expected_guideline(root), []
    got = {(r["model"], r["gpu"], r["mode"], r["use_case"]): r for r in read_rows(root / "results/guideline.csv")}
    if set(got) != set(want):
        problems.append(f"guideline.csv covers {sorted(got)}, cost.csv {sorted(want)}")
    for key in set(got) & set(want):
        g, w, where = got[key], want[key], "guideline.csv " + "/".join(key)
        if g["recommended"] != w.get("recommended", ""):
            problems.append(f"{where}: recommends {g['recommended']!r}, the rule gives {w.get('recommended')!r}")
        if g["runner_up"] != w.get("runner_up", ""):
            problems.append(f"{where}: runner-up {g['runner_up']!r}, the rule gives {w.get('runner_up')!r}")
        if g["eligible"].split(";") != w["eligible"]:
            problems.append(f"{where}: eligible {g['eligible']!r}, the rule gives {w['eligible']}")
        excluded = sorted(e.split(":")[0] for e in g["excluded"].split(";") if e)
        if excluded != w["excluded"]:
            problems.append(f"{where}: excluded {excluded}, the rule gives {w['excluded']}")
        for col, rel in (("queries_per_dollar", 1e-5), ("recovery_pct", 1e-5), ("margin_pct", 1e-3)):
            if col in w and not math.isclose(float(g[col]), w[col], rel_tol=rel, abs_tol=1e-6):
                problems.append(f"{where}: {col} {g[col]}, recomputed {w[col]}")
        if float(g["recovery_floor_pct"]) != w["floor"]:
            problems.append(f"{where}: floor {g['recovery_floor_pct']}, config {w['floor']}")
    return problems


# ----------------------------------------------------- 5. the report's tables = the CSVs


class Tables(HTMLParser):
    """The text of every cell of every <table>, row by row."""

    def __init__(self, html: str):
        super().__init__()
        self.tables, self._cell = [], None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


NUM = r"[-+]?[\d,]*\.?\d+(?:e[-+]?\d+)?"
CELL = re.compile(rf"^({NUM})(?: ± ({NUM}))?(?: \(({NUM})%(?: \[({NUM}), ({NUM})\])?.*\))?$")


def parse_cell(text: str) -> dict | None:
    m = CELL.match(text)
    if not m:
        return None
    vals = [None if v is None else float(v.replace(",", "")) for v in m.groups()]
    return dict(zip(("score", "stderr", "recovery_pct", "ci_low", "ci_high"), vals, strict=True))


def shown(value: float, text_value: float | None, decimals: int) -> bool:
    """A CSV value shown rounded to `decimals` places (half a unit of slack, plus float noise)."""
    return text_value is not None and abs(value - text_value) <= 0.5 * 10**-decimals + 1e-9


def recovery_table_problems(root: Path) -> list[str]:
    """results/tables/recovery.html shows summary.csv's scores, stderrs, recoveries and
    intervals: every non-similarity row once, in its scheme's column."""
    summary = [r for r in read_rows(root / "results/summary.csv") if r["level"] != "similarity"]
    tables = Tables((root / "results/tables/recovery.html").read_text()).tables
    problems, cells = [], {}
    for t in tables:
        head, *body = t
        for row in body:
            label, metric = row[0], row[1]
            level, task = ("suite", label.removesuffix(" (suite)")) if label.endswith(" (suite)") else ("task", label)
            for scheme, text in zip(head[2:], row[2:], strict=True):
                cells[(level, task, metric if level == "task" else None, scheme)] = text
    for r in summary:
        key = (r["level"], r["task"], r["metric"] if r["level"] == "task" else None, r["scheme"])
        text = cells.pop(key, None)
        where = f"recovery.html {'/'.join(k for k in key if k)}"
        c = parse_cell(text) if text is not None else None
        if c is None:
            problems.append(f"{where}: {text!r}, summary.csv has score {r['score']}")
            continue
        if not shown(float(r["score"]), c["score"], 4):
            problems.append(f"{where}: score {c['score']}, summary.csv {r['score']}")
        if r["stderr"] and not shown(float(r["stderr"]), c["stderr"], 4):
            problems.append(f"{where}: stderr {c['stderr']}, summary.csv {r['stderr']}")
        if r["scheme"] != BASELINE and r["recovery_pct"] and not shown(float(r["recovery_pct"]), c["recovery_pct"], 1):
            problems.append(f"{where}: recovery {c['recovery_pct']}, summary.csv {r['recovery_pct']}")
        if r["scheme"] != BASELINE and r.get("recovery_ci_low"):
            if not (
                shown(float(r["recovery_ci_low"]), c["ci_low"], 1)
                and shown(float(r["recovery_ci_high"]), c["ci_high"], 1)
            ):
                problems.append(
                    f"{where}: interval [{c['ci_low']}, {c['ci_high']}], summary.csv "
                    f"[{r['recovery_ci_low']}, {r['recovery_ci_high']}]"
                )
    problems += [f"recovery.html {k}: {v!r} is in no row of summary.csv" for k, v in cells.items() if v != "—"]
    return problems


def similarity_table_problems(root: Path) -> list[str]:
    """results/tables/similarity.html: one row per (on, measure) of summary.csv's similarity
    rows, each scheme's column showing that row's score. Rows are matched by their numbers,
    not their labels, so the check does not depend on how a measure is named."""
    rows = [r for r in read_rows(root / "results/summary.csv") if r["level"] == "similarity"]
    want: dict[tuple, dict] = {}
    for r in rows:
        if r["score"]:  # (an empty score is shown as a dash)
            want.setdefault((r["task"], r["metric"]), {})[r["scheme"]] = float(r["score"])
    shown_rows = []
    for t in Tables((root / "results/tables/similarity.html").read_text()).tables:
        head, *body = t
        shown_rows += [(row[0], {s: parse_cell(x) for s, x in zip(head[2:], row[2:], strict=True)}) for row in body]
    problems = []
    if len(shown_rows) != len(want):
        problems.append(f"similarity.html has {len(shown_rows)} rows, summary.csv {len(want)} measures")
    unused = list(shown_rows)
    for (task, metric), by_scheme in want.items():
        # KL is shown to 3 significant digits, every other measure to 4 decimals
        def matches(cells, by_scheme=by_scheme, metric=metric):
            for s, v in by_scheme.items():
                c = cells.get(s)
                if c is None or c["score"] is None:
                    return False
                tol = (abs(v) * 5e-3 + 1e-12) if metric == "kl_per_token" else 0.5e-4 + 1e-9
                if abs(c["score"] - v) > tol:
                    return False
            return True

        hit = next((x for x in unused if x[0] == task and matches(x[1])), None)
        if hit is None:
            problems.append(f"similarity.html: no row on {task} shows {metric} = {by_scheme}")
        else:
            unused.remove(hit)
    return problems


def guideline_table_problems(root: Path) -> list[str]:
    """results/tables/guideline.html shows guideline.csv: scheme, queries per dollar,
    recovery, cost ratio, runner-up and margin of every row."""
    got = {(r["gpu"], r["mode"], r["use_case"]): r for r in read_rows(root / "results/guideline.csv")}
    problems, seen = [], set()
    for t in Tables((root / "results/tables/guideline.html").read_text()).tables:
        head, *body = t
        col = {h: i for i, h in enumerate(head)}
        for row in body:
            key = (row[col["gpu"]], row[col["mode"]], row[col["use case"]])
            seen.add(key)
            g = got.get(key)
            if g is None:
                problems.append(f"guideline.html {key}: not in guideline.csv")
                continue
            for name, shown_s, want_s in (
                ("recommended", row[col["recommended"]], g["recommended"] or "none eligible"),
                ("runner-up", row[col["runner-up"]], g["runner_up"] or "—"),
            ):
                if shown_s != want_s:
                    problems.append(f"guideline.html {key} {name}: {shown_s!r}, guideline.csv {want_s!r}")
            # (column, guideline.csv field, decimals shown)
            for name, k, d in (
                ("queries/$", "queries_per_dollar", 0),
                ("recovery", "recovery_pct", 2),
                ("vs bf16", "cost_reduction_vs_bf16", 2),
                ("margin", "margin_pct", 1),
            ):
                if not g[k]:
                    continue
                m = re.match(NUM, row[col[name]])
                if not (m and shown(float(g[k]), float(m.group(0).replace(",", "")), d)):
                    problems.append(f"guideline.html {key} {name}: {row[col[name]]!r}, guideline.csv {g[k]}")
    problems += [f"guideline.html: no row for {k}" for k in set(got) - seen]
    return problems


# ------------------------------------------------------------------------------- tests

CHECKS = [checkpoint_problems, engine_problems, difference_problems]


def assert_none(problems: list[str]):
    assert problems == [], "\n".join(problems)


def test_every_output_names_its_own_schemes_checkpoint_made_by_its_recipe(study):
    cfg = study.config
    study.need(
        *[f"results/eval/{m}/{s}/{t}.json" for m in cfg["models"] for s in cfg["schemes"] for t in cfg["tasks"]],
        *[f"results/generations/{m}/{s}.meta.json" for m in cfg["models"] for s in cfg["schemes"]],
        *[f"results/perf/{m}/{s}/{g}/manifest.json" for m, s, g in perf_jobs(cfg)],
    )
    assert_none(checkpoint_problems(study.dir))


def test_every_engine_loaded_its_own_schemes_checkpoint(study):
    cfg = study.config
    study.need(
        *[f"results/eval/{m}/{s}/{t}.json" for m in cfg["models"] for s in cfg["schemes"] for t in cfg["tasks"]],
        *[f"results/generations/{m}/{s}.meta.json" for m in cfg["models"] for s in cfg["schemes"]],
        *[f"results/perf/{m}/{s}/{g}/manifest.json" for m, s, g in perf_jobs(cfg)],
    )
    assert_none(engine_problems(study.dir))


def test_one_model_load_and_its_own_request_cache_per_scheme(study):
    cfg = study.config
    study.need(*[f"results/eval/{m}/{s}/{t}.json" for m in cfg["models"] for s in cfg["schemes"] for t in cfg["tasks"]])
    assert_none(evaluation_engine_problems(study.dir))


def test_every_quantized_scheme_differs_measurably_from_bf16(study):
    cfg = study.config
    study.need(
        *[
            f"results/eval/{m}/{s}/{t}.samples.jsonl"
            for m in cfg["models"]
            for s in cfg["schemes"]
            for t in cfg["tasks"]
        ],
        *[f"results/similarity/{m}/{s}.json" for m in cfg["models"] for s in cfg["schemes"]],
    )
    assert_none(difference_problems(study.dir))


def test_summary_csv_equals_a_recomputation_from_the_eval_results(study):
    study.need("results/summary.csv")
    assert_none(summary_problems(study.dir))


def test_guideline_follows_its_rule_on_cost_and_summary(study):
    study.need("results/guideline.csv", "results/cost.csv", "results/summary.csv")
    assert_none(guideline_problems(study.dir))


def test_report_tables_show_the_csvs_numbers(study):
    study.need("results/tables/recovery.html", "results/tables/similarity.html", "results/tables/guideline.html")
    assert_none(
        recovery_table_problems(study.dir) + similarity_table_problems(study.dir) + guideline_table_problems(study.dir)
    )


# ------------------------------------------------------ the checks catch a miswired study


def test_miswired_study_fails_the_wiring_checks(study, tmp_path):
    """The bug these checks exist for, made for real in a copy: rules/common.smk hands
    w8a8-int's checkpoint to w4a16-int's jobs, and Snakemake re-evaluates w4a16-int's
    count_letter with it. (bf16's own directory is refused for a quantized scheme by the
    jobs' checkpoint preflight, so the wrong quantized checkpoint is the bug that gets through.)"""
    target = "results/eval/tiny-llama/w4a16-int/count_letter.json"
    study.need(target, "results/models/tiny-llama/w8a8-int", "results/summary.csv")
    for check in CHECKS:  # the study as made passes them all
        assert_none(check(study.dir))
    wf = study.copy(tmp_path / "wf")
    common = wf.path("rules/common.smk")
    right = "    return QUANTIZED_MODEL.format(model=model, scheme=scheme)\n"
    assert right in common.read_text()
    common.write_text(
        common.read_text().replace(
            right, '    if scheme == "w4a16-int":  # miswired on purpose\n        scheme = "w8a8-int"\n' + right
        )
    )
    wf.snakemake("--cores", "2", target)
    for check in CHECKS:
        found = check(wf.dir)
        assert found, f"{check.__name__} missed w4a16-int evaluated on w8a8-int's checkpoint"
        assert all("w4a16-int" in p for p in found), found


def test_bf16_results_under_a_quantized_name_fail_the_difference_check(study, tmp_path):
    """What evaluating the base model under every name would leave, with outputs that even
    name the right checkpoint: only the results themselves can tell, and they do."""
    study.need("results/eval/tiny-llama/bf16/count_letter.json", "results/eval/tiny-llama/w8a8-fp/count_letter.json")
    wf = study.copy(tmp_path / "wf")
    for task in study.config["tasks"]:
        src, dst = (wf.path(f"results/eval/tiny-llama/{s}/{task}") for s in ("bf16", "w8a8-fp"))
        ev = read_json(Path(f"{src}.json"))
        ev.update(scheme="w8a8-fp", checkpoint=expected_checkpoint(wf.config, "tiny-llama", "w8a8-fp"))
        Path(f"{dst}.json").write_text(json.dumps(ev))
        Path(f"{dst}.samples.jsonl").write_bytes(Path(f"{src}.samples.jsonl").read_bytes())
    assert checkpoint_problems(wf.dir) == []
    found = difference_problems(wf.dir)
    assert found and all("w8a8-fp" in p for p in found), found
