"""Lucid local edge."""
