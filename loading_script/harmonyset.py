"""HarmonySet as a `datasets.GeneratorBasedBuilder` over `harmonyset_hf.data.release` (three configs).

Why not ``load_dataset("loading_script/harmonyset.py")``: `datasets` 4.0 removed dataset scripts
(running code from a Hub repo was a security hole); `load_dataset` on a folder or repo holding a
``.py`` now raises "Dataset scripts are no longer supported". What to use instead:

* ``harmonyset build`` makes a folder of parquet (+ videos) with a README ``configs:`` block, and
  ``datasets.load_dataset(<that folder or its Hub repo>, "instruct" | "oe" | "mc")`` reads it;
* or import this builder and call it directly, which still works::

      from harmonyset import HarmonySet          # with loading_script/ on sys.path
      builder = HarmonySet(config_name="mc", data_dir="path/to/release", cache_dir=...)
      builder.download_and_prepare()
      ds = builder.as_dataset(split="test")     # or builder.as_streaming_dataset(split="test")

``data_dir`` is the folder of release files (``HarmonySet_Train.json``, ``HarmonySet_Test.json``,
``HarmonySet_MC.json``, JSON or JSON Lines). Videos are looked up in ``videos_dir`` (a config
keyword), else ``<data_dir>/videos``, else ``<data_dir>/../videos``; with none of them the
``video`` column is the file name the release gives (a string). Items that cannot be read are
skipped and logged with their reason, as ``harmonyset build`` does; ``strict=True`` raises instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import datasets

from harmonyset_hf import schema
from harmonyset_hf.data.release import ReleaseReader, iter_release

log = logging.getLogger(__name__)


@dataclass
class HarmonySetConfig(datasets.BuilderConfig):
    """One of ``instruct`` (train), ``oe`` (test), ``mc`` (test); optional videos folder and strictness."""

    videos_dir: str | None = None
    strict: bool = False


class HarmonySet(datasets.GeneratorBasedBuilder):
    """HarmonySet's instruction-tuning, open-ended and multiple-choice configs, read from the release files."""

    BUILDER_CONFIG_CLASS = HarmonySetConfig
    BUILDER_CONFIGS = [HarmonySetConfig(name=c, description=f"HarmonySet {c} ({schema.SPLITS[c]} split)")
                       for c in schema.CONFIGS]
    DEFAULT_CONFIG_NAME = "instruct"

    def _videos_dir(self) -> Path | None:
        if self.config.videos_dir:
            return Path(self.config.videos_dir)
        base = Path(self.config.data_dir or ".")
        for candidate in (base / "videos", base.parent / "videos"):
            if candidate.is_dir():
                return candidate
        return None

    def _info(self) -> datasets.DatasetInfo:
        config = self.config.name
        if self._videos_dir() is not None:
            feats = schema.features(config)
        else:
            feats = datasets.Features({"video": datasets.Value("string"), **schema.features(config, with_video=False)})
        return datasets.DatasetInfo(description=__doc__.splitlines()[0], features=feats,
                                    homepage="https://arxiv.org/abs/2503.01725")

    def _split_generators(self, dl_manager):
        if not self.config.data_dir:
            raise ValueError("HarmonySet needs data_dir=<folder with the release JSON files>")
        return [datasets.SplitGenerator(name=schema.SPLITS[self.config.name],
                                        gen_kwargs={"release_dir": self.config.data_dir})]

    def _generate_examples(self, release_dir: str):
        videos = self._videos_dir()
        reader = ReleaseReader(videos, strict=self.config.strict, check_videos=videos is not None)
        for config, rec in iter_release(release_dir, reader):
            if config == self.config.name:
                key = rec["question_id"] if config == "mc" else rec["id"]
                yield key, {k: rec.get(k) for k in self.info.features}
        for problem in reader.release.problems:
            if problem.config == self.config.name:
                log.warning("skipped %s", problem)
