"""Agent templates: ready agents (sales, support, knowledge) as versioned YAML files, each
with a golden set of runs it must get right (see templates/ at the repository root)."""
