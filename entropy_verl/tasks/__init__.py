"""Verifiable tasks (prompt generators, answer checkers, verl reward functions)."""
