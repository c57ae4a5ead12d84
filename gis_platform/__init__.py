"""City GIS spatial services platform: the core (settings, database, security, app, CLI)."""

__version__ = "0.1.0"
