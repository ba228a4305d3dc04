"""Training recipes and the corpus builder."""
