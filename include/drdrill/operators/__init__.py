"""Operators: Airflow-facing, thin, reusable in a user's own DAG."""
