"""HarmonySet tasks for lmms-eval: names the YAML files use; the logic is in harmonyset_hf.harness.tasks.

lmms-eval loads data with ``load_dataset(dataset_path, dataset_name)`` and has no ``--metadata``,
so the Hub folder or repo id comes from ``$HARMONYSET_DATA``, read when lmms-eval loads a task.
"""

from harmonyset_hf.harness.pair_tasks import (  # noqa: F401
    pair_accuracy,
    pair_data_source,
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
    data_source,
    doc_to_target,
    doc_to_text,
    doc_to_visual,
    load_dataset_kwargs,
    mc_process_results,
    oe_culture,
    oe_emotion,
    oe_failed,
    oe_process_results,
    oe_rhythm,
    oe_theme,
    prepare_docs,
)

DATA = data_source()
DATASET_KWARGS = load_dataset_kwargs(DATA)
PAIR_DATA = pair_data_source()  # the swap folder: $HARMONYSET_PAIR_DATA, else $HARMONYSET_DATA
PAIR_DATASET_KWARGS = load_dataset_kwargs(PAIR_DATA)

process_docs = prepare_docs
process_docs_rhythm = aspect_filter("rhythm")
process_docs_theme = aspect_filter("theme")
process_docs_emotion = aspect_filter("emotion")
process_docs_culture = aspect_filter("culture")

globals().update(AGGREGATIONS)  # oe_{category}_{aspect}, oe_scored, mc_letter_only
