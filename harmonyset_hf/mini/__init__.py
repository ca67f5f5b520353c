"""HarmonySet-mini: a small synthetic release with real media and a known ground truth, and test clips."""
