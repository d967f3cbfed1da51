"""6 REPORT: writers of results (files); they never run a model."""
