"""The sync detector's instrument network (harmonyset_hf.sync.instrument): packaged, loadable, rate-agnostic."""

from pathlib import Path

import numpy as np
import pytest

import harmonyset_hf
from harmonyset_hf.sync import instrument

pytest.importorskip("librosa")


def test_weights_are_package_data_and_fit_the_network():
    """The weights ship inside the package (a wheel has no checkout) and load into the architecture strictly."""
    path = Path(harmonyset_hf.__file__).parent / "sync" / instrument.WEIGHTS
    assert path.is_file()
    net, meta = instrument.load()
    assert meta["families"] == net.chord.out_channels and meta["width"] == net.chord.in_channels
    assert meta["history"][-1]["val_chord"] > 0.3, meta["history"][-1]  # far above chance (1/48)
    # Never the evaluation set's soundfont: the network must not have heard the music it is scored on.
    assert "TimGM6mb.sf2" not in meta["soundfonts"]


def test_embedding_follows_the_callers_frame_grid():
    """At the network's own rate and hop the frames match librosa's; at others the embedding is resampled."""
    rng = np.random.default_rng(0)
    y = (0.1 * rng.standard_normal(3 * 16000)).astype(np.float32)
    frames = 1 + y.size // 256
    emb = instrument.embedding_of(y, 16000, 256, frames)
    assert emb.shape == (64, frames) and np.isfinite(emb).all()
    y22 = (0.1 * rng.standard_normal(3 * instrument.SAMPLE_RATE)).astype(np.float32)
    own = instrument.embedding_of(y22, instrument.SAMPLE_RATE, instrument.HOP, 1 + y22.size // instrument.HOP)
    assert own.shape == (64, 1 + y22.size // instrument.HOP)


def test_embedding_refuses_a_spectrogram_of_other_bands():
    """A mel spectrogram made otherwise is refused with the reason, not embedded into nonsense."""
    with pytest.raises(ValueError, match="64 mel bands, got 40"):
        instrument.embedding(np.zeros((40, 100)))


def test_input_is_level_free():
    """The same music 20 dB quieter gives the same input (dynamics are another group's business)."""
    rng = np.random.default_rng(1)
    mel = rng.uniform(-60, 0, (64, 300))
    assert np.allclose(instrument.normalize(mel), instrument.normalize(mel - 20.0))
