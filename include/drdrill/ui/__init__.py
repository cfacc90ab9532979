"""The "DR drills" page inside the Airflow UI: a FastAPI app the API server mounts at ``/dr-drills``.

`drdrill.ui.plugin` declares it to Airflow (light: every Airflow process imports plugins);
`drdrill.ui.app` builds the app (FastAPI, Airflow's auth dependencies) only in the API server;
`drdrill.ui.render` renders one journal as the per-run view. The data is the evidence model
(`drdrill.evidence`, the journals: the evidence of record) with Airflow's run history of the drill
DAGs (`drdrill.ui.history`, read from the metadata DB in the API server): a drill run that wrote
no journal (killed, still running, failed before its last task) is listed with its Airflow state,
and its window shows "ran, no journal" instead of "missed". The page reads ``api/evidence`` and
draws it with the vendored uPlot (``static/vendor``), so it works with no internet access.
"""

URL_PREFIX = "/dr-drills"
