"""Training of the coefficient flows."""
