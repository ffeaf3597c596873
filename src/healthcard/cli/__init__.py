"""Command-line entry points (Typer + Rich): thin, no business rules."""
