"""drdrill's Airflow plugin: what the scheduler and the DAG processor must know to read drdrill's
DAGs back (the timetables). Light on purpose: every Airflow process imports it at start."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from drdrill.timetables import DrillCronTimetable, DrillTimetable


class DrdrillPlugin(AirflowPlugin):
    name = "drdrill"
    timetables = [DrillCronTimetable, DrillTimetable]
