"""The "DR drills" page in the Airflow UI (`drdrill.ui`): a FastAPI app on the API server at ``/dr-drills``,
a top-level nav entry and a per-run view. Light: the app is built only when the API server asks for it."""

from drdrill.ui.plugin import DrDrillsPlugin

__all__ = ["DrDrillsPlugin"]
