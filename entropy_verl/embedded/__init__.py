"""The embedded default: a tiny countdown-3 policy and its RL data, built offline and cached.

Exports are resolved lazily (PEP 562) so that importing the package stays cheap and
``python -m entropy_verl.embedded.build`` does not find its own module pre-imported by the package.
"""

__all__ = ["EmbeddedPaths", "ensure_embedded_default", "evaluate"]


def __getattr__(name):
    if name in __all__:
        from entropy_verl.embedded import build

        return getattr(build, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
