"""PyTorch model definitions, criteria and training recipes. Torch lives here and in `export/` only."""
