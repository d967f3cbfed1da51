"""1 LOAD: a Vensim ``.mdl`` -> :class:`Model` (translation cached by content hash)."""
from .model import CONTROL, Model, Variable, load

__all__ = ["CONTROL", "Model", "Variable", "load"]
