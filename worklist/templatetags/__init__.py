"""Template tags of the worklist app."""
