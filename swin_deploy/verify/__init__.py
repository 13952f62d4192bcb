"""Comparing artifacts against references: metrics, gates and reports."""
