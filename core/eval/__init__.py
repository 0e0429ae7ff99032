"""Evaluation of generated coefficient takes against ground truth and baselines (`flowvq eval`)."""
