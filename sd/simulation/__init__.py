"""3 RUN: running a model once or many times (the engine is chosen here)."""
