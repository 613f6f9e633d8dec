"""The commands that run, compare, plot and benchmark runs (``python -m entropy_verl.tools.<command>``, most of them
behind a Makefile target): they use the library (losses, controllers, trainer, diagnostics) and are not part of it."""
