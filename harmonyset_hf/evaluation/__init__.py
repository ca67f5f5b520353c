"""Evaluation: MC answer reading and accuracy, OE judging and aggregation, predictions (resumable), reports.
"""

from .evaluate import (
    MAX_LISTED,
    RESULTS_FORMAT,
    EvaluationError,
    describe_judge,
    evaluate_mc,
    evaluate_oe,
    evaluate_pair,
    read_predictions,
    summary_line,
    write_results,
)
from .mc_extractor import EXTRACTORS, read_choices, read_counts
from .mc_reading import Choice, normalize_reply, read_choice, reason_kind

__all__ = [
    "EXTRACTORS",
    "Choice",
    "EvaluationError",
    "MAX_LISTED",
    "RESULTS_FORMAT",
    "describe_judge",
    "evaluate_mc",
    "evaluate_oe",
    "evaluate_pair",
    "normalize_reply",
    "read_choice",
    "read_choices",
    "read_counts",
    "read_predictions",
    "reason_kind",
    "summary_line",
    "write_results",
]
