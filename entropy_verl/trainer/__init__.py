"""entropy_verl's trainer: ``sync.py``, verl's v1 sync trainer extended with driver-side entropy control (registered
as ``entropy_sync`` when the plugin imports it), and ``whole_step.py``, the driver's whole-step computations in plain
torch."""
