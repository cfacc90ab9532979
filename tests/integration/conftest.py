"""Fixtures of the integration tests beyond tests/conftest.py: Task SDK comms and clean lock Variables."""

from integration.lockhelpers import clean, sdk  # noqa: F401 - fixtures, registered by being imported here
