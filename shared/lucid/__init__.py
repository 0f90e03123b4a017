"""The Lucid layer: what every gateway function shares (settings, errors, clients, security)."""

__version__ = "0.1.0"
