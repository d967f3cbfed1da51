"""5b SENSITIVITY: Monte Carlo ensembles, Sobol and Morris indices."""
