"""drdrill: disaster-recovery drills on Apache Airflow 3, installable as an Airflow provider.

Airflow finds it through the ``apache_airflow_provider`` entry point (`drdrill.provider`).
"""

__version__ = "0.1.0"
