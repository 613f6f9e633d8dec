"""entropy_verl: entropy control for RL fine-tuning of LLMs, built on verl 0.9.1's registries and hooks."""

__version__ = "0.1.0"
