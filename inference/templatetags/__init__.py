"""Template tags of the inference app."""
