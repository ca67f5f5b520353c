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


def test_class_probabilities_are_the_networks_heads_and_their_change_is_a_total_variation():
    """family_posteriors gives what the network's own heads give (softmax of its chord and lead logits, each
    summing to 1 a frame); posterior_change is 0 where the named classes stay and, where every frame's chord and
    lead class switch at once, 2 (the most two heads can move) in the curve's units."""
    import torch

    from harmonyset_hf.sync import timbre

    rng = np.random.default_rng(1)
    mel = rng.uniform(-60, 0, (instrument.N_MELS, 200)).astype(np.float32)
    emb = instrument.embedding(mel)
    post = instrument.family_posteriors(emb)
    net, meta = instrument.load()
    with torch.inference_mode():
        _, chord, lead, _ = net(torch.from_numpy(instrument.normalize(mel))[None])
    want = np.concatenate([torch.softmax(chord[0], 0).numpy(), torch.softmax(lead[0], 0).numpy()])
    assert post.shape == (2 * meta["families"], 200)
    np.testing.assert_allclose(post, want, atol=1e-5)
    np.testing.assert_allclose(post[:meta["families"]].sum(axis=0), 1.0, atol=1e-9)

    steady = np.zeros((2 * meta["families"], 100))
    steady[[0, meta["families"]]] = 1.0
    assert np.allclose(timbre.posterior_change(steady, 20)[20:80], 0.0)  # where both windows fit
    switched = steady.copy()
    switched[:, 50:] = 0.0
    switched[[1, meta["families"] + 1], 50:] = 1.0
    change = timbre.posterior_change(switched, 20) * timbre.UNITS["posterior"]
    assert change[50] == pytest.approx(2.0) and change[25] == pytest.approx(0.0)
