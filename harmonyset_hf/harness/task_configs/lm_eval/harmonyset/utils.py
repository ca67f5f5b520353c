"""HarmonySet tasks for lm-eval: names the YAML files use; the logic is in harmonyset_hf.harness.tasks."""

from harmonyset_hf.harness.pair_tasks import (  # noqa: F401
    load_pair_docs,
    pair_accuracy,
    pair_doc_to_target,
    pair_doc_to_text,
    pair_invalid_rate,
    pair_process_results,
    pair_strict_accuracy,
    pair_tie_rate,
)
from harmonyset_hf.harness.tasks import (  # noqa: F401
    AGGREGATIONS,
    aspect_filter,
    doc_to_target,
    doc_to_text,
    doc_to_visual,
    load_docs,
    mc_process_results,
    oe_culture,
    oe_emotion,
    oe_failed,
    oe_process_results,
    oe_rhythm,
    oe_theme,
)

process_docs_rhythm = aspect_filter("rhythm")
process_docs_theme = aspect_filter("theme")
process_docs_emotion = aspect_filter("emotion")
process_docs_culture = aspect_filter("culture")

globals().update(AGGREGATIONS)  # oe_{category}_{aspect}, oe_scored, mc_letter_only
