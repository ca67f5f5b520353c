"""The paper's human-machine annotation framework, as tools a team can run on its own data.

The steps, in the order the paper made HarmonySet (each one is ``harmonyset annotate <step>``):

- :mod:`.music_filter` (``filter``): AudioSet tagging of the crawl; a video is kept when ``Music``
  is among its top 2 labels; the top-10 labels become the metadata's ``audio_labels``.
- :mod:`.consensus` (``consensus``): three annotators' rows -> per-sub-aspect majority, merged
  sync points, agreement statistics (Fleiss' kappa), and a review queue.
- :mod:`.review` (``review``): a reviewer sheet out and back in: label fixes and a
  Low/Medium/High consensus rating (the paper's Table 3).
- :mod:`.describe` (``describe``): the paper's annotation-generation prompt (Fig. 10) with the
  human tags and metadata, the clip as frames and audio, to an OpenAI-compatible MLLM.
- :mod:`.instruct` (``instruct``): each annotation paired with one of the paper's instruction
  templates (Fig. 11) -> the release's VideoLLaMA2 JSON that ``harmonyset build`` reads.
- :mod:`.mc` (``mc``): the paper's MC curation prompt (Fig. 14), parsed, validated, answer
  letters re-balanced -> the release's MC JSON.
"""
