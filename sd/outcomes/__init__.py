"""4 OUTCOMES: reducing trajectories to numbers (metrics) and documented outcomes (targets)."""
