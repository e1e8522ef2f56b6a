"""xborder: cross-border data-flow compliance monitor (package root; see DESIGN.md for the path of data)."""

__version__ = "0.1.0"
