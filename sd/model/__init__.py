"""1 LOAD: a Vensim ``.mdl`` -> :class:`Model` (translation cached by content hash)."""
from .loading import load
from .model import CONTROL, Model, Variable

__all__ = ["CONTROL", "Model", "Variable", "load"]
