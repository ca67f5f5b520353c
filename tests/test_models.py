"""Model adapters: the tiny Qwen2.5-Omni thinker, the torchvision-free processor, qwen2_5_omni/tiny, openai-api."""

from __future__ import annotations

import base64
import io
import json
import wave

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from harmonyset_hf.models import ModelError, get_model  # noqa: E402
from harmonyset_hf.models.omni_processing import (  # noqa: E402
    IGNORE_INDEX,
    MODEL_KWARGS,
    OmniVideoProcessor,
    build_inputs,
    load_processor,
    make_conversation,
)

SR = 16000


def _audio_tokens(mel_frames: int) -> int:
    """Qwen2.5-Omni's audio encoder: two stride-2 stages over the mel frames."""
    return ((mel_frames - 1) // 2 + 1 - 2) // 2 + 1


def _write_clip(path, seconds: float, seed: int) -> None:
    """A real h264+AAC mp4: moving squares on a hue that changes, and a tone whose pitch changes."""
    from harmonyset_hf.mini import render as sm

    n = int(round(seconds * sm.FPS))
    rng = np.random.default_rng(seed)
    hues = rng.uniform(0, 255, size=3)

    def frames():
        for i in range(n):
            img = np.zeros((sm.HEIGHT, sm.WIDTH, 3), dtype=np.uint8)
            img[:] = (hues + 40 * (i // 20)) % 255
            x = (i * 7) % (sm.WIDTH - 40)
            img[60:100, x:x + 40] = 255
            yield img

    t = np.arange(int(seconds * sm.SAMPLE_RATE)) / sm.SAMPLE_RATE
    freq = np.where(t < seconds / 2, 330.0, 440.0)
    mono = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    sm.encode_mp4(path, frames(), n, np.stack([mono, mono]))


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """The tiny model, written by the CLI verb."""
    from harmonyset_hf.cli import main

    out = tmp_path_factory.mktemp("tiny") / "model"
    assert main(["tiny-model", "--out", str(out), "--seed", "0"]) == 0
    return out


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Two short clips of different lengths and one of 40 s (longer than Whisper's 30 s window)."""
    root = tmp_path_factory.mktemp("videos")
    out = {}
    for name, seconds, seed in (("a", 6.0, 1), ("b", 9.0, 2), ("long", 40.0, 3)):
        _write_clip(root / f"{name}.mp4", seconds, seed)
        out[name] = root / f"{name}.mp4"
    return out


@pytest.fixture(scope="module")
def processor(tiny_dir):
    return load_processor(str(tiny_dir))


@pytest.fixture(scope="module")
def thinker(tiny_dir):
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration

    return Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(tiny_dir).eval()


_CLIPS: dict = {}


def _clip(path, frames=16):
    """The clip of a test video (decoded once per path and frame count)."""
    from harmonyset_hf.media import load_clip

    key = (str(path), frames)
    if key not in _CLIPS:
        _CLIPS[key] = load_clip(str(path), num_frames=frames, sample_rate=SR)
    return _CLIPS[key]


# ------------------------------------------------------------------------------------------------
# The tiny model
# ------------------------------------------------------------------------------------------------
def test_tiny_model_reloads_like_a_checkpoint(tiny_dir, processor, thinker):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    config = thinker.config
    for attr, token in (("video_token_id", "<|VIDEO|>"), ("audio_token_id", "<|AUDIO|>"),
                        ("image_token_id", "<|IMAGE|>"), ("audio_start_token_id", "<|audio_bos|>"),
                        ("vision_start_token_id", "<|vision_bos|>")):
        assert getattr(config, attr) == tok.convert_tokens_to_ids(token), attr
    assert tok.video_token == "<|VIDEO|>" and tok.audio_bos_token == "<|audio_bos|>"
    assert config.text_config.vocab_size == len(tok)
    # Special tokens stay whole; text round-trips through the byte-level BPE.
    text = "Rhythm and Synchronization: the beat drops at 00:12 <|VIDEO|>"
    ids = tok(text, add_special_tokens=False).input_ids
    assert ids.count(config.video_token_id) == 1 and tok.decode(ids) == text
    assert isinstance(processor.video_processor, OmniVideoProcessor)
    assert processor.video_processor.size["longest_edge"] < 128 * 28 * 28  # the tiny budget, read back
    saved = json.loads((tiny_dir / "processor_config.json").read_text())
    assert saved["processor_class"] == "Qwen2_5OmniProcessor"
    templated = processor.apply_chat_template(make_conversation("Why?"), tokenize=False, add_generation_prompt=True)
    assert "<|vision_bos|><|VIDEO|><|vision_eos|>Why?<|im_end|>" in templated
    assert templated.endswith("<|im_start|>assistant\n")


def test_processor_save_roundtrip_and_tiny_cache(processor, tmp_path, monkeypatch):
    """What train/loop.py saves beside an adapter reloads with the same budget; `tiny` without a path uses the cache."""
    from harmonyset_hf.models.tiny import is_tiny_dir, tiny_model_dir

    processor.save_pretrained(tmp_path / "saved")
    again = load_processor(str(tmp_path / "saved"))
    assert again.video_processor.size == processor.video_processor.size
    assert json.loads((tmp_path / "saved" / "processor_config.json").read_text())["processor_class"] == \
        "Qwen2_5OmniProcessor"
    monkeypatch.setenv("HARMONYSET_CACHE_DIR", str(tmp_path / "cache"))
    first = tiny_model_dir()
    assert is_tiny_dir(first) and str(first).startswith(str(tmp_path / "cache"))
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert tiny_model_dir() == first and (first / "model.safetensors").stat().st_mtime_ns == stamp
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ModelError, match="no model"):
        tiny_model_dir(tmp_path / "other")
    from harmonyset_hf.cli import main

    assert main(["tiny-model", "--out", str(tmp_path / "other")]) == 2  # refuses to write into it
    assert sorted(p.name for p in (tmp_path / "other").iterdir()) == ["notes.txt"]


# ------------------------------------------------------------------------------------------------
# The video processor
# ------------------------------------------------------------------------------------------------
def test_video_processor_matches_transformers_layout():
    """A still video equals transformers' own (PIL) Qwen2-VL image processor; a moving one its patchify."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, size=(180, 320, 3), dtype=np.uint8)
    size = {"shortest_edge": 56 * 56, "longest_edge": 224 * 224}
    ours = OmniVideoProcessor(size=size)(videos=[np.stack([frame, frame])], return_tensors="np")
    ref = Qwen2VLImageProcessorPil(size=size)(images=[frame], return_tensors="np")
    assert ours["video_grid_thw"].tolist() == ref["image_grid_thw"].tolist()
    np.testing.assert_allclose(ours["pixel_values_videos"], ref["pixel_values"], atol=1e-5)

    # No resize needed (56x84 is on the 28 grid and inside the budget): compare against the stock
    # Qwen2VLVideoProcessor.patchify (view + permute(0, 1, 4, 7, 5, 8, 3, 2, 6, 9)) in torch.
    video = rng.integers(0, 256, size=(5, 56, 84, 3), dtype=np.uint8)  # odd: last frame repeated
    out = OmniVideoProcessor(size={"shortest_edge": 28 * 28, "longest_edge": 56 * 84})(videos=[video])
    mean, std = np.array(OmniVideoProcessor().image_mean), np.array(OmniVideoProcessor().image_std)
    x = torch.tensor(((video / 255.0 - mean) / std).transpose(0, 3, 1, 2), dtype=torch.float32)[None]
    x = torch.cat([x, x[:, -1:]], dim=1)
    t, gh, gw = 3, 4, 6
    ref = x.view(1, t, 2, 3, gh // 2, 2, 14, gw // 2, 2, 14).permute(0, 1, 4, 7, 5, 8, 3, 2, 6, 9)
    ref = ref.reshape(t * gh * gw, 3 * 2 * 14 * 14)
    assert out["video_grid_thw"].tolist() == [[t, gh, gw]]
    np.testing.assert_allclose(out["pixel_values_videos"], ref.numpy(), atol=1e-5)


# ------------------------------------------------------------------------------------------------
# Inputs: token counts, real fps, long audio, labels
# ------------------------------------------------------------------------------------------------
def test_inputs_token_counts_follow_grid_fps_and_audio(processor, thinker, videos):
    clips = [_clip(videos["a"]), _clip(videos["long"])]
    inputs = build_inputs(processor, clips, [make_conversation("Describe."), make_conversation("Rate it.")],
                          add_generation_prompt=True)
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    assert (mask[:, 0] == 0).any() and (mask[:, -1] == 1).all()  # left padding
    merge = processor.video_processor.merge_size ** 2
    mel = inputs["feature_attention_mask"].sum(-1)
    for i, clip in enumerate(clips):
        grid = inputs["video_grid_thw"][i]
        assert grid[0] == 8  # 16 frames, temporal patch 2
        assert (ids[i] == processor.video_token_id).sum() == grid.prod() // merge
        assert mel[i] == len(clip.audio) // 160  # every 10 ms hop of the clip's own audio
        assert (ids[i] == processor.audio_token_id).sum() == _audio_tokens(int(mel[i]))
        # seconds per grid from the real sampling rate (16 frames over the clip), not the default 2 fps
        assert inputs["video_second_per_grid"][i].item() == pytest.approx(2 * clip.duration / 16, rel=1e-4)
    # The 40 s clip keeps all its audio: > 3000 mel frames (30 s), 25 audio tokens per second.
    assert clips[1].duration > 39 and mel[1] > 3000
    assert (ids[1] == processor.audio_token_id).sum() == _audio_tokens(int(mel[1])) > 750

    # TMRoPE: video grid k sits at (time of grid k) x 25 on the same axis as the audio (1 token = 40 ms).
    position_ids, _ = thinker.model.get_rope_index(
        ids, video_grid_thw=inputs["video_grid_thw"], attention_mask=mask, use_audio_in_video=True,
        audio_seqlens=mel, second_per_grids=inputs["video_second_per_grid"])
    for i in range(len(clips)):
        t_pos = position_ids[0, i]
        audio_t = t_pos[ids[i] == processor.audio_token_id]
        video_t = t_pos[ids[i] == processor.video_token_id].unique()
        start = audio_t.min()
        assert torch.equal(audio_t - start, torch.arange(len(audio_t)))
        expected = (torch.arange(8) * inputs["video_second_per_grid"][i] * 25).long() + start
        assert torch.equal(video_t, expected)


def test_silent_clip_gets_silence_and_fps_from_frame_times(processor):
    """A clip without audio still gets the audio-in-video layout (silence of its length); no duration -> times."""
    from types import SimpleNamespace

    frames = np.zeros((16, 64, 96, 3), dtype=np.uint8)
    silent = SimpleNamespace(frames=frames, duration=8.0, audio=None, sample_rate=SR,
                             frame_times=(np.arange(16) + 0.5) * 0.5)
    inputs = build_inputs(processor, [silent], [make_conversation("x")], add_generation_prompt=True)
    assert inputs["feature_attention_mask"].sum() == 800
    assert (inputs["input_ids"] == processor.audio_token_id).sum() == _audio_tokens(800)
    undated = SimpleNamespace(**{**vars(silent), "duration": 0.0, "audio": np.zeros(SR * 8, dtype=np.float32)})
    inputs = build_inputs(processor, [undated], [make_conversation("x")], add_generation_prompt=True)
    assert inputs["video_second_per_grid"][0].item() == pytest.approx(1.0)  # 2 frames per grid at 2 fps


def test_training_inputs_label_only_the_answer(processor, thinker, videos):
    answer = "Rhythm and Synchronization: The beat matches the cuts.\nEmotion: happy."
    conv = [make_conversation("Analyze.", answer=answer), make_conversation("Rate.", answer="Emotion: calm.")]
    batch = build_inputs(processor, [_clip(videos["a"]), _clip(videos["b"])], conv,
                         add_generation_prompt=False, labels=True, padding_side="right")
    labels = batch["labels"]
    assert labels.shape == batch["input_ids"].shape and (batch["attention_mask"][:, 0] == 1).all()
    first = labels[0][labels[0] != IGNORE_INDEX]
    assert processor.tokenizer.decode(first) == answer + "<|im_end|>"
    assert (labels[batch["attention_mask"] == 0] == IGNORE_INDEX).all()
    out = thinker(**batch, **MODEL_KWARGS)
    assert torch.isfinite(out.loss) and out.loss.item() > 0
    out.loss.backward()  # gradients flow through the LM and both encoders
    assert thinker.model.audio_tower.proj.weight.grad is not None
    thinker.zero_grad(set_to_none=True)


def test_forward_needs_use_audio_in_video(processor, thinker, videos):
    """Without use_audio_in_video the positions differ (transformers raises nothing): the pitfall is real."""
    inputs = build_inputs(processor, [_clip(videos["a"])], [make_conversation("Describe.")],
                          add_generation_prompt=True)
    with torch.no_grad():
        good = thinker(**inputs, **MODEL_KWARGS).logits
        try:
            bad = thinker(**inputs).logits
        except (RuntimeError, ValueError, IndexError):
            bad = None
    assert torch.isfinite(good).all()
    assert bad is None or not torch.allclose(good, bad)


def test_batched_logits_match_single_clips(processor, thinker, videos):
    """Left padding changes nothing: each clip's next-token logits are the same alone or batched."""
    clips = [_clip(videos["a"]), _clip(videos["b"])]
    convs = [make_conversation("Describe the music."), make_conversation("Is it in sync?")]
    with torch.no_grad():
        both = thinker(**build_inputs(processor, clips, convs, add_generation_prompt=True), **MODEL_KWARGS)
        for i in range(2):
            alone = thinker(**build_inputs(processor, [clips[i]], [convs[i]], add_generation_prompt=True),
                            **MODEL_KWARGS)
            torch.testing.assert_close(both.logits[i, -1], alone.logits[0, -1], atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------------------------------------
# The adapters
# ------------------------------------------------------------------------------------------------
def _rows(videos, names):
    return [{"id": f"hs{n}", "video": {"path": str(videos[n]), "bytes": None}} for n in names]


@pytest.mark.parametrize("frames", [16, 32])
def test_tiny_adapter_generates_a_batch(tiny_dir, videos, frames):
    model = get_model("tiny", path=str(tiny_dir), frames=frames, seed=0, max_new_tokens=6)
    assert model.name == "tiny" and model.needs_media
    replies = model.generate(_rows(videos, ["a", "b"]), ["Describe the music.", "Is it in sync?"])
    assert len(replies) == 2 and all(isinstance(r, str) for r in replies)
    # each reply says whether it ran into max_new_tokens (6 here: a random-weight model rarely stops before)
    assert all(isinstance(r.truncated, bool) for r in replies) and any(r.truncated for r in replies)
    clip = model.load_clips(_rows(videos, ["a"]))[0]
    assert len(clip.frames) == frames
    inputs = build_inputs(model.processor, [clip], [make_conversation("x")], add_generation_prompt=True)
    assert inputs["video_grid_thw"][0, 0] == frames // 2


def test_qwen_adapter_loads_peft_adapter_and_full_checkpoint(tiny_dir, videos, tmp_path, thinker):
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2_5OmniConfig, Qwen2_5OmniForConditionalGeneration

    from harmonyset_hf.models.qwen2_5_omni import load_thinker

    torch.manual_seed(0)
    lora = LoraConfig(r=4, lora_alpha=8, init_lora_weights=False, task_type="CAUSAL_LM",
                      target_modules=r".*language_model\.layers\.\d+\.self_attn\.(q|v)_proj")
    peft_model = get_peft_model(load_thinker(str(tiny_dir)), lora)
    peft_model.save_pretrained(tmp_path / "lora")
    base = get_model("qwen2_5_omni", path=str(tiny_dir), max_new_tokens=4)
    tuned = get_model("qwen2_5_omni", path=str(tiny_dir), adapter=str(tmp_path / "lora"), max_new_tokens=4)
    assert tuned.name == f"qwen2_5_omni:{tiny_dir.name}+lora"
    clip = base.load_clips(_rows(videos, ["a"]))
    inputs = build_inputs(base.processor, clip, [make_conversation("Describe.")], add_generation_prompt=True)
    with torch.no_grad():
        diff = (base.model(**inputs, **MODEL_KWARGS).logits - tuned.model(**inputs, **MODEL_KWARGS).logits).abs()
    assert diff.max() > 1e-4  # the LoRA weights were applied (merged)
    assert len(tuned.generate(_rows(videos, ["a"]), ["Describe."])) == 1

    # A full Qwen2.5-Omni checkpoint (thinker + talker config, thinker.* weights) loads as the thinker.
    full = Qwen2_5OmniForConditionalGeneration(
        Qwen2_5OmniConfig(thinker_config=thinker.config.to_dict(), enable_audio_output=False))
    full.save_pretrained(tmp_path / "full")
    loaded = load_thinker(str(tmp_path / "full"))
    for key, value in full.thinker.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_openai_api_adapter_sends_frames_and_audio(videos, tmp_path):
    from openai_server import FakeOpenAIServer

    with FakeOpenAIServer(keep_bodies=True) as server:
        model = get_model("openai-api", model="test-omni", base_url=server.base_url, frames=4, seed=0,
                          cache_dir=str(tmp_path / "cache"), max_side=160)
        assert model.name == "openai-api:test-omni"
        rows = _rows(videos, ["a", "b"])
        replies = model.generate(rows, ["Describe the music.", "Is it in sync?"])
        assert [r.endswith("[4 image(s), 1 audio]") for r in replies] == [True, True]
        assert "Describe the music." in replies[0]
        bodies = server.stats.bodies
        assert len(bodies) == 2
        body = next(b for b in bodies if "Describe the music." in json.dumps(b))  # concurrent: any order
        parts = body["messages"][-1]["content"]
        images = [p for p in parts if p["type"] == "image_url"]
        from PIL import Image

        img = Image.open(io.BytesIO(base64.b64decode(images[0]["image_url"]["url"].split(",", 1)[1])))
        assert img.format == "JPEG" and max(img.size) == 160
        audio = next(p for p in parts if p["type"] == "input_audio")["input_audio"]
        with wave.open(io.BytesIO(base64.b64decode(audio["data"]))) as w:
            assert (w.getframerate(), w.getnchannels()) == (SR, 1)
            assert w.getnframes() / SR == pytest.approx(6.0, abs=0.15)
        assert any(p.get("text") == "[00:04]" for p in parts)  # frame time labels
        # Cached: the same batch again costs nothing.
        assert model.generate(rows, ["Describe the music.", "Is it in sync?"]) == replies
        assert server.total_served == 2
        model.close()


def test_unknown_model_option_is_named_with_the_accepted_ones():
    with pytest.raises(ModelError, match=r"model 'baseline-random' has no option 'foo'; it takes seed, frames"):
        get_model("baseline-random", seed=1, frames=16, foo=1)
    # tiny hands **kwargs to QwenOmniModel: its options are followed up the class chain (nothing is built)
    with pytest.raises(ModelError, match=r"no option 'bogus'; it takes path, .*adapter"):
        get_model("tiny", bogus=1)


def test_openai_api_without_a_model_says_how_to_give_one(monkeypatch):
    for var in ("HARMONYSET_API_MODEL", "HARMONYSET_API_BASE_URL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ModelError, match=r"no model given.*--model-args model=NAME"):
        get_model("openai-api")


def test_missing_adapter_folder_is_named(tiny_dir, tmp_path):
    with pytest.raises(ModelError, match=r"adapter '.*runs/lora16': no such folder"):
        get_model("tiny", path=str(tiny_dir), adapter=str(tmp_path / "runs" / "lora16"))


def test_missing_checkpoint_or_processor_folder_is_one_line(tmp_path):
    from harmonyset_hf.models.omni_processing import load_processor
    from harmonyset_hf.models.qwen2_5_omni import load_thinker

    missing = str(tmp_path / "no_such_model")  # offline in tests: tried as a Hub repo id, then refused
    for load in (load_processor, load_thinker):
        with pytest.raises(ModelError, match="no_such_model': no such folder, and as a Hub repo id: ") as err:
            load(missing)
        assert "\n" not in str(err.value)
