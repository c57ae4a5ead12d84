"""ASGI entry point for uvicorn workers: settings from the environment."""

from gis_platform.app import create_app
from gis_platform.service_user import restrict_umask

restrict_umask()
app = create_app()
