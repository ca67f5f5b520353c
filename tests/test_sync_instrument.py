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


def _looped(rng: np.random.Generator, chords: np.ndarray, offset: np.ndarray, frames: int, hold: int = 40
            ) -> np.ndarray:
    """(d, frames): a loop of ``chords`` (each held ``hold`` frames) moved by ``offset`` (an instrument), with noise."""
    idx = (np.arange(frames) // hold) % chords.shape[1]
    return chords[:, idx] + offset[:, None] + 0.1 * rng.standard_normal((chords.shape[0], frames))


def test_a_repeated_chord_loop_is_not_new_but_a_new_arrangement_is():
    """What a section repeats (four chords in a loop, each moving the embedding elsewhere) finds its twin within
    the reach, so recurrence_distance stays low inside the section; the same loop by another instrument (a shift
    of every frame) has no twin before it. The two-window mean distance fires on the loop's chords as well."""
    from harmonyset_hf.sync.windows import recurrence_distance, spread_distance

    rng = np.random.default_rng(3)
    chords = rng.standard_normal((16, 4))
    first = _looped(rng, chords, np.zeros(16), 480)
    second = _looped(rng, chords, np.full(16, 0.6), 480)
    m = np.concatenate([first, second], axis=1)
    new = recurrence_distance(m, 60, 300)
    inside = np.r_[200:420, 700:900]  # a whole loop (160 frames) heard before and after, windows inside a section
    assert new[480] > 3 * new[inside].max()
    assert np.argmax(new[400:560]) + 400 == pytest.approx(480, abs=4)
    means = spread_distance(m, 60)
    assert means[inside].max() > 0.5 * means[480]  # the loop's chords move the window means nearly as much
    assert np.all(new[:60] == 0) and np.all(new[-60:] == 0)  # no full window: no novelty


def test_recurrence_distance_looks_no_further_than_its_reach():
    """A frame's value depends only on the frames within its window, its reach and a block of it: changing the
    music further away leaves it as it was (so a long video is compared piece by piece, not all with all)."""
    from harmonyset_hf.sync.windows import recurrence_distance

    rng = np.random.default_rng(4)
    m = rng.standard_normal((8, 1200))
    far = m.copy()
    far[:, 1000:] += 5.0
    a, b = recurrence_distance(m, 40, 200, block=8), recurrence_distance(far, 40, 200, block=8)
    assert np.array_equal(a[:740], b[:740])
    assert not np.allclose(a[900:1100], b[900:1100])


def test_instrument_change_scales_the_embedding_and_is_in_its_unit():
    """instrument_change is recurrence_distance of the embedding in units of each dimension's spread, divided by
    its unit, over the timbre module's reach at the frame rate given."""
    from harmonyset_hf.sync import timbre
    from harmonyset_hf.sync.windows import recurrence_distance

    rng = np.random.default_rng(5)
    emb = rng.standard_normal((timbre.EMBEDDING_SPREAD.size, 700)) * timbre.EMBEDDING_SPREAD[:, None]
    rate = 43.0
    want = recurrence_distance(emb / timbre.EMBEDDING_SPREAD[:, None], 120, int(round(timbre.REACH * rate)),
                               timbre.BLOCK) / timbre.UNITS["instrument"]
    np.testing.assert_allclose(timbre.instrument_change(emb, 120, rate), want)


def test_recurrence_distance_is_its_definition_block_by_block():
    """The chunked computation gives, frame by frame, what the definition says: block means every ``step``
    frames, each block after the frame against its nearest block in the reach before it (and back), the smaller
    of the two means; whatever the chunk size."""
    from scipy.ndimage import uniform_filter1d

    from harmonyset_hf.sync.windows import recurrence_distance

    rng = np.random.default_rng(6)
    m = np.cumsum(rng.standard_normal((5, 700)), axis=1) * 0.1
    half, reach, block, step = 30, 120, 8, 2
    b = uniform_filter1d(m, block, axis=1, mode="nearest")[:, ::step]
    k, w, span, h = b.shape[1], half // step, reach // step, block // (2 * step)

    def nearest(rows: range, cols: range) -> float:
        return float(np.mean([min(np.sqrt(np.mean((b[:, i] - b[:, j]) ** 2)) for i in rows) for j in cols]))

    want = np.zeros(k)
    for t in range(w, k - w):
        want[t] = min(nearest(range(max(0, t - h - span), t - h), range(t + h, t + w)),
                      nearest(range(t + h, min(k, t + h + span)), range(t - w, t - h)))
    for chunk in (7, 64, 1000):
        got = recurrence_distance(m, half, reach, block, step, chunk=chunk)
        np.testing.assert_allclose(got[half:-half], np.interp(np.arange(700), np.arange(k) * step, want)[half:-half],
                                   atol=1e-9)
