"""entropy_verl's trainers: subclasses of verl's v1 trainers, registered with ``register_trainer``."""

from .sync import TRAINER_NAME, EntropySyncTrainer

__all__ = ["TRAINER_NAME", "EntropySyncTrainer"]
