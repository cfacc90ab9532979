"""In a checkout (``make``, the tests, docker-compose) Airflow loads drdrill's plugin from here;
an installed drdrill registers the same plugin through its ``airflow.plugins`` entry point."""

from drdrill.plugin import DrdrillPlugin

__all__ = ["DrdrillPlugin"]
