"""icx shell: CLI, settings loading and validation, wiring. No business logic lives here."""

__version__ = "0.1.0"
