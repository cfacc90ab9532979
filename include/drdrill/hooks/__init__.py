"""Hooks: one per system the drills talk to; each owns its Airflow connection and client."""
