"""Renderers: turn analysis results into text, JSON, folded stacks or SVG."""
