"""entropy_verl: entropy control for RL fine-tuning of LLMs, built on verl 0.9.1's registries and hooks.

Importing any part of entropy_verl first imports verl, which loads our ``verl.plugins`` entry point
(``entropy_verl.plugin``). Doing it here, before any of our modules that subclass verl's classes, keeps the import
order the same whichever side is imported first; the explicit plugin import also registers us when
``VERL_USE_EXTERNAL_PLUGINS`` does not name entropy_verl. Where only torch is installed (an accelerator machine
running ``make bench``), the pure-torch modules (losses, engine/vocab_stats, trainer/whole_step, diagnostics) still
import, and there is nothing to register with.
"""

try:
    import verl  # noqa: F401
except ImportError:  # torch alone: no verl to extend
    verl = None

if verl is not None:
    from entropy_verl import plugin  # noqa: F401

__version__ = "0.1.0"
