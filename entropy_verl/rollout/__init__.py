"""Rollout backends entropy_verl adds to verl's rollout registries."""
