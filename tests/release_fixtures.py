"""Tiny release files + real tiny mp4s (PyAV) for the release and hub tests."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np

ANNOTATION = ("Rhythm and Synchronization: The cuts land on the beat at 00:05.\n"
              "Theme and Content: A family picnic with a cheerful folk tune.\n"
              "Emotion: Warm and happy, matching the bright melody.\n"
              "Cultural Relevance: No specific cultural element.")
LABELS = {"music_pace": "fast", "rhythm_alignment": "precise", "content_alignment": "strongly related",
          "narrative_supplement": "enhancement", "video_emotions": ["happy", "hope"],
          "emotion_alignment": "consistent", "emotional_richness": "rich",
          "culture_elements": ["no culture element"], "cultural_relevance": "unrelated"}


def make_clip(path: Path, seconds: float = 1.0, fps: int = 8, shade: int = 60, sound: bool = True) -> Path:
    """A real h264+aac mp4 (64x48, a tone; ``sound=False``: no audio stream) written with PyAV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream("aac", rate=16000) if sound else None
        if audio is not None:
            audio.layout = "mono"
        for i in range(int(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), (shade + 10 * i) % 255, np.uint8),
                                               format="rgb24")
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if audio is None:
            return path
        t = np.arange(int(seconds * 16000)) / 16000
        tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for start in range(0, len(tone), 1024):
            chunk = tone[start:start + 1024]
            frame = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
            frame.sample_rate = 16000
            for packet in audio.encode(frame):
                out.mux(packet)
        for packet in audio.encode():
            out.mux(packet)
    return path


def item(item_id: str, category: str = "Life & Emotions", subcategory: str = "Family", sync: str = "00:05,A",
         annotation: str = ANNOTATION, video: str | None = None) -> dict:
    """One release item in VideoLLaMA2 SFT format plus the paper's extra fields."""
    return {"id": item_id, "video": video if video is not None else f"{item_id}.mp4",
            "conversations": [{"from": "human", "value": "<video>\nAnalyze the video and its music."},
                              {"from": "gpt", "value": annotation}],
            "category": category, "subcategory": subcategory, "duration": 1.0, "sync": sync,
            "labels": dict(LABELS),
            "metadata": {"title": f"title {item_id}", "author": "someone", "duration": 1.0, "video_height": 48,
                         "video_width": 64, "audio_labels": ["Music", "Speech"], "youtube_id": f"yt{item_id}"}}


def mc_item(item_id: str) -> dict:
    """One MC item: four questions, options as a dict, answers as letters."""
    aspects = ["Rhythm and Synchronization", "Theme and Content", "Emotion", "Cultural Relevance"]
    return {"id": item_id, "video": f"{item_id}.mp4",
            "questions": [{"aspect": a, "question": f"{a}: which fits best?",
                           "options": {"A": "one", "B": "two", "C": "three", "D": "four"}, "answer": "ABCD"[i]}
                          for i, a in enumerate(aspects)]}


def make_release(root: Path, train: int = 3, test: int = 2) -> tuple[Path, Path]:
    """A clean release (train, test, MC JSON lists) and its videos under ``root``; returns (release, videos)."""
    release, videos = root / "release", root / "videos"
    release.mkdir(parents=True, exist_ok=True)
    train_items = [item(f"tr{i:03d}") for i in range(train)]
    test_items = [item(f"te{i:03d}", category="Knowledge", subcategory="DIY", sync="0") for i in range(test)]
    for i, it in enumerate(train_items + test_items):
        make_clip(videos / it["video"], shade=20 * i)
    (release / "HarmonySet_Train.json").write_text(json.dumps(train_items), encoding="utf-8")
    (release / "HarmonySet_Test.json").write_text(json.dumps(test_items), encoding="utf-8")
    (release / "HarmonySet_MC.json").write_text(json.dumps([mc_item(it["id"]) for it in test_items]),
                                               encoding="utf-8")
    return release, videos
