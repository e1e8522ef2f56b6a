"""CLI layer: parses arguments, calls the library, maps errors to exit codes (0 ok, 1 findings, 2 usage/config)."""
