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

__all__ = [
    "EvaluationError",
    "MAX_LISTED",
    "RESULTS_FORMAT",
    "describe_judge",
    "evaluate_mc",
    "evaluate_oe",
    "evaluate_pair",
    "read_predictions",
    "summary_line",
    "write_results",
]
