"""The exceptions HarmonySet raises; the CLI prints their message without a traceback."""


class HarmonySetError(Exception):
    """Base class of every error this package raises on purpose (bad input, bad config, ...)."""


class ConfigError(HarmonySetError):
    """A bad option, config file or environment setting."""
