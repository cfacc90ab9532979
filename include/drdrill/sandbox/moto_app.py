"""moto's AWS emulation as a WSGI app, served by gunicorn with TLS for the sandbox.

pgBackRest always speaks TLS to S3 and breaks on plain ``moto_server`` (no close_notify);
gunicorn's gthread worker closes TLS properly. One worker only: moto keeps state in memory.
"""

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

app = DomainDispatcherApplication(create_backend_app)
