"""Verifiable tasks (prompt generators, answer checkers, verl reward functions), one module per task; the config
group ``task/<name>.yaml`` says which functions a run uses. A module declares the ``data_source`` values its functions
are written for in ``DATA_SOURCES``, which start-up validation checks against ``entropy_verl.task.data_source``."""

from __future__ import annotations

import importlib


def load_task_function(spec: str):
    """``module:function`` -> the function (a task's answer extractor, named in config); a clear ValueError if not."""
    module, _, name = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"expected 'module:function', could not load {spec!r}: {exc}") from None
