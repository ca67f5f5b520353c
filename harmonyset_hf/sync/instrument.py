"""Instrumentation as a learned embedding: a small convolutional network that names the instrument family of
the chords and of the lead from a log-mel spectrogram, whatever notes they play.

The network (:data:`WEIGHTS`, fitted by ``scripts/fit_instrument_net.py``) never heard the evaluation set of
:mod:`.music`: it was trained on music with its own patterns (one arrangement a clip, while key, mode, chords,
register, tempo and dynamics change every two bars), rendered with other General MIDI soundfonts and with
additive-synthesis patches (a fixed table of harmonic amplitudes, as synthesisers and HarmonySet-mini's pads
have: one instrument whose spectrum slides with the notes). Its targets are the 16 General MIDI families of
the chord and the lead instrument, or the synthesis patch; :func:`embedding` returns the layer before them,
one vector a frame, which :mod:`.timbre` compares across two windows.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from ..errors import HarmonySetError
from ..io import atomic_write_bytes

WEIGHTS = "instrument_net.npz"  # package data of harmonyset_hf.sync
SAMPLE_RATE, HOP, N_MELS, FMIN = 22050, 512, 64, 40.0  # the spectrogram the network was trained on
FLOOR_DB = 80.0  # dB under the loudest frame within +-1 s that the input keeps


class InstrumentNetError(HarmonySetError):
    """The instrument network's weights are missing or do not fit its architecture."""


def log_mel(y: np.ndarray) -> np.ndarray:
    """The spectrogram the network takes, of mono ``y`` at :data:`SAMPLE_RATE`: ``librosa.power_to_db`` of
    :data:`N_MELS` mel bands from :data:`FMIN` Hz of a power STFT of 2048 with hop :data:`HOP`."""
    import librosa

    power = np.abs(librosa.stft(y, n_fft=2048, hop_length=HOP)) ** 2
    return librosa.power_to_db(librosa.feature.melspectrogram(S=power, sr=SAMPLE_RATE, n_mels=N_MELS, fmin=FMIN))


def normalize(mel_db: np.ndarray) -> np.ndarray:
    """The network's input: dB under the loudest frame within +-1 s (level-free, a decay kept), floored, scaled."""
    from scipy.ndimage import maximum_filter1d

    peak = maximum_filter1d(mel_db.max(axis=0), size=int(2 * SAMPLE_RATE / HOP) | 1, mode="nearest")
    return ((np.maximum(mel_db - peak[None, :], -FLOOR_DB) + FLOOR_DB / 2) / 20.0).astype(np.float32)


def build(families: int, width: int = 64) -> Any:
    """The network, untrained: 2-D convolutions pooled over frequency, then dilated convolutions over time
    (about 1.5 s of context); heads for the chord family, the lead family and drums."""
    import torch
    from torch import nn

    def block(i: int, o: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU())

    class InstrumentNet(nn.Module):
        """log-mel (batch, 64, frames) -> embedding (batch, width, frames) and per-frame logits."""

        def __init__(self) -> None:
            super().__init__()
            self.b1, self.b2, self.b3, self.b4 = block(1, 24), block(24, 32), block(32, 48), block(48, 64)
            self.pool = nn.MaxPool2d((2, 1))
            self.t = nn.Sequential(nn.Conv1d(128, 96, 9, padding=4), nn.BatchNorm1d(96), nn.ReLU(),
                                   nn.Conv1d(96, 96, 9, padding=8, dilation=2), nn.BatchNorm1d(96), nn.ReLU(),
                                   nn.Conv1d(96, width, 9, padding=16, dilation=4))
            self.chord, self.lead = nn.Conv1d(width, families, 1), nn.Conv1d(width, families, 1)
            self.drums = nn.Conv1d(width, 1, 1)

        def embed(self, x: torch.Tensor) -> torch.Tensor:
            """The per-frame embedding (before the heads)."""
            h = self.pool(self.b1(x[:, None]))
            h = self.b4(self.pool(self.b3(self.pool(self.b2(h)))))
            return self.t(torch.cat([h.mean(2), h.amax(2)], 1))  # mean and max over what is left of frequency

        def heads(self, e: torch.Tensor) -> tuple[torch.Tensor, ...]:
            """Chord-family, lead-family and drum logits, each per frame, of an embedding."""
            r = torch.relu(e)
            return self.chord(r), self.lead(r), self.drums(r)[:, 0]

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            """Embedding, chord-family, lead-family and drum logits, each per frame."""
            e = self.embed(x)
            return e, *self.heads(e)

    return InstrumentNet()


def save(net: Any, path: str, meta: dict[str, Any]) -> None:
    """Write the network's weights (float32 arrays, no pickle) and what it was fitted on to ``path`` (.npz)."""
    import io

    arrays = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in net.state_dict().items()
              if not k.endswith("num_batches_tracked")}
    buf = io.BytesIO()
    np.savez_compressed(buf, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)
    atomic_write_bytes(path, buf.getvalue())


@lru_cache(maxsize=1)
def load() -> tuple[Any, dict[str, Any]]:
    """The shipped network in eval mode, and the record of how it was fitted."""
    import torch

    ref = resources.files("harmonyset_hf.sync").joinpath(WEIGHTS)
    try:
        with ref.open("rb") as fh, np.load(fh, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise InstrumentNetError(f"cannot read the instrument network {WEIGHTS} from the package: {exc}") from exc
    meta = json.loads(str(arrays.pop("meta")))
    net = build(int(meta["families"]), int(meta["width"]))
    state = {k: torch.from_numpy(v) for k, v in arrays.items()}
    missing, unexpected = net.load_state_dict(state, strict=False)
    if [k for k in missing if not k.endswith("num_batches_tracked")] or unexpected:
        raise InstrumentNetError(f"{WEIGHTS} does not fit the network: missing {missing}, unexpected {unexpected}")
    net.eval()
    return net, meta


def embedding(mel_db: np.ndarray) -> np.ndarray:
    """(width, frames) embedding of a :func:`log_mel` spectrogram."""
    import torch

    if mel_db.shape[0] != N_MELS:
        raise ValueError(f"the instrument network takes {N_MELS} mel bands, got {mel_db.shape[0]}")
    net, _ = load()
    with torch.inference_mode():
        out = net.embed(torch.from_numpy(normalize(mel_db))[None])
    return out[0].numpy().astype(np.float64)


def family_posteriors(embedding: np.ndarray) -> np.ndarray:
    """(2 x classes, frames): the probabilities per frame of the chord instrument's class, then the lead's, that
    the network's heads give for an :func:`embedding` (each head's column sums to 1)."""
    import torch

    net, _ = load()
    with torch.inference_mode():
        chord, lead, _ = net.heads(torch.from_numpy(np.asarray(embedding, dtype=np.float32))[None])
    return torch.cat([torch.softmax(head[0].double(), 0) for head in (chord, lead)]).numpy()


def embedding_of(y: np.ndarray, sr: int, hop: int, frames: int, mel_db: np.ndarray | None = None) -> np.ndarray:
    """:func:`embedding` of mono ``y`` at ``sr`` on a grid of ``frames`` frames of ``hop`` samples. ``mel_db``, the
    caller's log-mel of ``y`` made as :func:`log_mel` makes it but at ``sr`` and ``hop``, is used as it is when
    those are the network's; else ``y`` is resampled to its rate and the embedding to the caller's grid."""
    import librosa

    if mel_db is not None and (sr, hop) == (SAMPLE_RATE, HOP):
        return embedding(mel_db)
    if sr != SAMPLE_RATE:
        y = librosa.resample(y, orig_sr=sr, target_sr=SAMPLE_RATE)
    e = embedding(log_mel(y))
    if e.shape[1] == frames:
        return e
    src = np.arange(e.shape[1]) * HOP / SAMPLE_RATE
    dst = np.arange(frames) * hop / sr
    return np.array([np.interp(dst, src, row) for row in e])
