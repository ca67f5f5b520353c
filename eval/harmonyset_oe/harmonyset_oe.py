"""HarmonySet-OE judge scores as an `evaluate` metric: a thin wrapper over harmonyset_hf.evaluation.evaluate_oe."""

import datasets
import evaluate

from harmonyset_hf.evaluation import evaluate_oe
from harmonyset_hf.judge import make_judge
from harmonyset_hf.schema import ASPECTS, normalize_category

_DESCRIPTION = """HarmonySet-OE (CVPR 2025): each reply is judged against the reference annotation from 1 to
10 for Rhythm & Synchronization, Theme & Content, Emotion and Cultural Relevance, by the paper's
GPT-4o judge prompt on any OpenAI-compatible server (judge="openai") or by an offline embedding
proxy (judge="embedding", not comparable with the paper). Overall is the mean over items, as in
the paper; items the judge could not score are left out and counted."""

_KWARGS_DESCRIPTION = """
Args:
    predictions: the model's replies (list of str).
    references: the reference annotations, four sections each (list of str).
    categories: each item's category (key or any paper spelling) for the per-category means.
    judge: "embedding" (default, offline) or "openai".
    judge_model, judge_base_url, cache_dir: options of the openai judge.
Returns:
    {aspect} (Overall mean per aspect), mean, n, failed, and {category}_{aspect} means.
Examples:
    >>> metric = evaluate.load("eval/harmonyset_oe")
    >>> metric.compute(predictions=[reply], references=[annotation], categories=["Knowledge"])["rhythm"]
"""

_CITATION = """@inproceedings{zhou2025harmonyset,
  title={HarmonySet: A Comprehensive Dataset for Understanding Video-Music Semantic Alignment
         and Temporal Synchronization},
  booktitle={CVPR}, year={2025}}"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class HarmonysetOe(evaluate.Metric):
    """HarmonySet-OE judge scores per aspect, per category and Overall (item mean)."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "predictions": datasets.Value("string"),
                "references": datasets.Value("string"),
                "categories": datasets.Value("string"),
            }),
            reference_urls=["https://arxiv.org/abs/2503.01725"],
        )

    def _compute(self, predictions, references, categories, judge="embedding", judge_model=None,
                 judge_base_url=None, cache_dir=None):
        rows = [{"id": str(i), "category": normalize_category(cat), "annotation": ref}
                for i, (ref, cat) in enumerate(zip(references, categories))]
        kwargs = {} if judge == "embedding" else {"model": judge_model, "base_url": judge_base_url,
                                                  "cache_dir": cache_dir}
        scorer = make_judge(judge, **kwargs)
        try:
            results, _ = evaluate_oe(rows, {str(i): p for i, p in enumerate(predictions)}, scorer)
        finally:
            scorer.close()
        overall = results["overall"]
        out = {a: overall[a] for a in ASPECTS}
        out.update(mean=overall["mean"], n=overall["n"], failed=results["counts"]["failed"],
                   judge=scorer.describe().get("kind"))
        for cat, means in results["categories"].items():
            out.update({f"{cat}_{a}": means[a] for a in ASPECTS})
        return out
