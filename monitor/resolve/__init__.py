"""Resolve stage: each unique destination gets its jurisdiction facts, each with its source."""
