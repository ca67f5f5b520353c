"""HarmonySet (video-music alignment) for `datasets`, `accelerate`, `lm_eval` and `lmms-eval`."""

__version__ = "0.1.0"
