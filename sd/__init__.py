"""sd: system-dynamics models of small-workshop clusters, Vensim files first."""
__version__ = "0.1.0"
