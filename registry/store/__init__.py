"""Metadata storage of the Document Registry (DESIGN.md section 4)."""
