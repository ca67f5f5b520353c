"""Audits of the benchmark and its judge: MC answer bias, judge robustness, judge agreement."""
