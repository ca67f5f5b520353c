"""Any OpenAI-compatible multimodal chat model (GPT-4o, Gemini, a vLLM server) as a HarmonySet model.

Each clip goes out as its sampled frames (JPEG data-URL images, each after a ``[mm:ss]`` label so
that the model can answer with timestamps) and its music (``input_audio``, 16 kHz mono WAV,
base64), followed by the prompt. Calls go through :class:`harmonyset_hf.llm.LLMClient`: bounded
concurrency, retries, and an on-disk cache, so a rerun pays for nothing twice.

The endpoint comes from ``base_url``/``model`` options or ``HARMONYSET_API_BASE_URL``,
``HARMONYSET_API_MODEL``, ``HARMONYSET_API_API_KEY`` (falling back to ``OPENAI_BASE_URL`` and
``OPENAI_API_KEY``). Pass the key through the environment, never as an option: options are
written into prediction files. Not every endpoint takes images and audio in one request
(Gemini's OpenAI-compatible endpoint does; OpenAI's vision models do not take audio): ``audio=false``
sends the frames only.
"""

from __future__ import annotations

import base64
import io
import wave
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..llm import ChatRequest, LLMClient
from .base import ModelError, Reply
from .clips import ClipLoader

ENV_PREFIX = "HARMONYSET_API"


def jpeg_data_url(frame: np.ndarray, max_side: int = 512, quality: int = 85) -> str:
    """A uint8 ``[H, W, 3]`` frame as a ``data:image/jpeg;base64,...`` URL (longest side <= ``max_side``)."""
    from PIL import Image

    image = Image.fromarray(np.asarray(frame, dtype=np.uint8))
    if max_side and max(image.size) > max_side:
        scale = max_side / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             Image.BICUBIC)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=int(quality))
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def wav_base64(audio: np.ndarray, sample_rate: int) -> str:
    """Mono float audio in [-1, 1] as base64 of a 16-bit PCM WAV file."""
    pcm = (np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0) * 32767.0).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(int(sample_rate))
        out.writeframes(pcm.tobytes())
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _stamp(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


def clip_messages(clip: Any, prompt: str, system: str | None = None, audio: bool = True, timestamps: bool = True,
                  max_side: int = 512, jpeg_quality: int = 85) -> list[dict]:
    """Chat messages for one clip: [system], user = frames (+ time labels), the music, then the prompt."""
    content: list[dict] = []
    times = getattr(clip, "frame_times", None)
    times = [] if times is None else list(times)
    duration = float(getattr(clip, "duration", 0) or 0)
    intro = f"The video ({duration:.1f} s) as {len(clip.frames)} frames sampled uniformly over its length"
    content.append({"type": "text", "text": intro + (", each after its time:" if timestamps else ":")})
    for i, frame in enumerate(clip.frames):
        if timestamps and i < len(times):
            content.append({"type": "text", "text": f"[{_stamp(float(times[i]))}]"})
        content.append({"type": "image_url", "image_url": {"url": jpeg_data_url(frame, max_side, jpeg_quality)}})
    if audio:
        if getattr(clip, "audio", None) is None or len(clip.audio) == 0:
            content.append({"type": "text", "text": "The video has no audio track."})
        else:
            content.append({"type": "text", "text": "The video's soundtrack:"})
            content.append({"type": "input_audio",
                            "input_audio": {"data": wav_base64(clip.audio, clip.sample_rate), "format": "wav"}})
    content.append({"type": "text", "text": prompt})
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": content})
    return messages


class OpenAIChatModel:
    """A multimodal chat model behind an OpenAI-compatible endpoint, shown frames + music."""

    needs_media = True

    def __init__(self, model: str | None = None, base_url: str | None = None, frames: int | None = 16, seed: int = 0,
                 audio: bool = True, timestamps: bool = True, max_side: int = 512, jpeg_quality: int = 85,
                 max_tokens: int = 1024, temperature: float = 0.0, system: str | None = None,
                 concurrency: int | None = None, cache_dir: str | None = None, use_cache: bool = True,
                 timeout: float = 120.0, max_attempts: int = 6, media_backend: str = "pyav",
                 name: str | None = None, progress: bool = False):
        try:
            self.client = LLMClient(model=model, base_url=base_url, env_prefix=ENV_PREFIX, cache_dir=cache_dir,
                                    use_cache=use_cache, concurrency=concurrency, timeout=timeout,
                                    max_attempts=max_attempts)
        except ConfigError as err:  # "pass one" alone does not say how: name the model options
            raise ModelError(f"openai-api: {err}; model and endpoint can also be given as options "
                             "(--model-args model=NAME,base_url=URL)") from err
        self.frames = 16 if frames is None else int(frames)
        if self.frames < 1:
            raise ModelError(f"frames must be positive, not {self.frames}")
        self.seed, self.audio, self.timestamps = int(seed), bool(audio), bool(timestamps)
        self.max_side, self.jpeg_quality = int(max_side), int(jpeg_quality)
        self.params = {"max_tokens": int(max_tokens), "temperature": float(temperature), "seed": self.seed}
        self.system, self.progress = system, progress
        self.name = name or f"openai-api:{self.client.model}"
        self._clips = ClipLoader(frames=self.frames, sample_rate=16000, backend=media_backend)

    def requests(self, batch: list[dict], prompts: list[str]) -> list[Any]:
        """The chat requests for a batch (frames and audio of each row's video, then its prompt)."""
        clips = self._clips(batch)
        return [ChatRequest(clip_messages(clip, prompt, self.system, self.audio, self.timestamps, self.max_side,
                                          self.jpeg_quality), params=dict(self.params))
                for clip, prompt in zip(clips, prompts)]

    def generate(self, batch: list[dict], prompts: list[str]) -> list[str]:
        """One reply per row; raises :class:`ModelError` naming the rows whose calls failed for good."""
        if len(batch) != len(prompts):
            raise ModelError(f"{len(batch)} rows but {len(prompts)} prompts")
        results = self.client.complete_many(self.requests(batch, prompts), progress=self.progress,
                                            desc=self.name)
        failed = [f"{row.get('question_id') or row.get('id')}: {r.error}" for row, r in zip(batch, results)
                  if not r.ok]
        if failed:  # answered rows are cached: the caller's per-row retry pays only for these
            raise ModelError(f"{self.name}: {len(failed)} call(s) failed: " + "; ".join(failed))
        return [Reply(r.text or "", truncated=r.finish_reason == "length" if r.finish_reason else None)
                for r in results]

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()
