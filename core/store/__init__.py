"""Data access, one module per table family: the only place their SQL is written."""
