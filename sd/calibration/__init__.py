"""5a CALIBRATION: fit a spec's parameters to documented outcomes."""
