"""ASGI entry point for uvicorn workers: settings from the environment."""

from gis_platform.app import create_app

app = create_app()
