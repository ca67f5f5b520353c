"""HarmonySet-MC accuracy as an `evaluate` metric: a thin wrapper over harmonyset_hf.evaluation.evaluate_mc."""

import datasets
import evaluate

from harmonyset_hf.evaluation import evaluate_mc
from harmonyset_hf.schema import ASPECTS, normalize_aspect

_DESCRIPTION = """HarmonySet-MC (CVPR 2025) accuracy. Free-form replies are read into an option letter with
harmonyset_hf.evaluation.scoring.parse_choice (the same code as `harmonyset eval mc`); a reply naming several
options or none is invalid and counts as wrong. Returns overall and per-aspect accuracy, their 95 %
Wilson intervals, invalid-answer rates and the 25 % chance level."""

_KWARGS_DESCRIPTION = """
Args:
    predictions: the model's free-form replies (list of str).
    references: the correct letters, "A"-"D" (list of str).
    options: the four option texts of each question, A-D order (list of list of str).
    aspects: the aspect of each question ("rhythm", "theme", "emotion", "culture" or a display name).
Returns:
    accuracy, invalid_rate, ci95_low, ci95_high, n, chance, and {aspect}_accuracy, {aspect}_invalid_rate,
    {aspect}_ci95_low, {aspect}_ci95_high, {aspect}_n for each aspect.
Examples:
    >>> metric = evaluate.load("eval/harmonyset_mc")
    >>> metric.compute(predictions=["The answer is B."], references=["B"],
    ...                options=[["slow", "fast", "none", "mixed"]], aspects=["rhythm"])["accuracy"]
    1.0
"""

_CITATION = """@inproceedings{zhou2025harmonyset,
  title={HarmonySet: A Comprehensive Dataset for Understanding Video-Music Semantic Alignment
         and Temporal Synchronization},
  booktitle={CVPR}, year={2025}}"""


def _flatten(prefix, stats):
    ci = stats.get("ci95") or [None, None]
    return {f"{prefix}accuracy": stats["accuracy"], f"{prefix}invalid_rate": stats["invalid_rate"],
            f"{prefix}ci95_low": ci[0], f"{prefix}ci95_high": ci[1], f"{prefix}n": stats["n"]}


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class HarmonysetMc(evaluate.Metric):
    """HarmonySet-MC accuracy with answer extraction, intervals and invalid rates."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "predictions": datasets.Value("string"),
                "references": datasets.Value("string"),
                "options": datasets.Sequence(datasets.Value("string")),
                "aspects": datasets.Value("string"),
            }),
            reference_urls=["https://arxiv.org/abs/2503.01725"],
        )

    def _compute(self, predictions, references, options, aspects):
        rows = [{"question_id": str(i), "id": str(i), "aspect": normalize_aspect(aspect), "category": None,
                 "options": list(opts), "answer": str(ref).strip().upper()}
                for i, (ref, opts, aspect) in enumerate(zip(references, options, aspects))]
        results, _ = evaluate_mc(rows, {str(i): p for i, p in enumerate(predictions)})
        out = {**_flatten("", results["overall"]), "chance": results["overall"]["chance"]}
        for aspect in ASPECTS:
            out.update(_flatten(f"{aspect}_", results["aspects"][aspect]))
        return out
