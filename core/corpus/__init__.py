"""The training corpus: synthetic emotional speech with exact phoneme timings, and readers for real data."""
