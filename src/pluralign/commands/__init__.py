"""Command groups of the pluralign CLI, one module each."""
