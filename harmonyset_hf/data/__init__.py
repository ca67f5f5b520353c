"""Release files -> canonical records -> a Hub folder (build, card, load, push, export)."""
