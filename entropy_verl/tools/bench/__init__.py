"""The two benchmarks: ``losses`` (``make bench``: the loss methods, Clip-V's statistics and the driver's whole-step
work, each next to verl's own baseline) and ``pipeline`` (``make bench-pipeline``: verl's per-step phase times next to
a bare-torch loop doing the same work); ``report`` holds what their results share (the machine, the header, the
files written)."""
