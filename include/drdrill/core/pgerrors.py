"""A PostgreSQL server that answers and refuses us is up, not down: one classification for the hook's
readiness probe and the triggers. Plain Python (no driver import): DAG files import the triggers.
"""

from __future__ import annotations

# What the server answers when it is up but will not let us in. None of it is an outage: it must
# never count toward the failover criterion, and waiting does not fix it.
REFUSED_US = "up, but refuses drdrill: "
_REFUSALS = {  # SQLSTATE -> what it means for the operator
    "28P01": "password authentication failed",
    "28000": "not authorised (no pg_hba.conf entry, or no such role)",
    "3D000": "the database does not exist",
    "42501": "permission denied",
    "53300": "too many connections",
    # libpq's own words when the server asked for a password and the connection has none
    "nopw": "the server asks for a password and the connection has none (set it in the Airflow connection)",
    # TLS fails after the server answered: its certificate or TLS setup does not match the connection's
    "tls": "TLS refused (the server's certificate does not verify against sslrootcert, or its TLS setup does not "
           "match the connection's sslmode)",
}
# libpq reports a FATAL at connection time as text, often without a SQLSTATE: the same causes by text.
_REFUSAL_TEXT = [
    ("password authentication failed", "28P01"), ("authentication failed", "28P01"),
    ("no password supplied", "nopw"),
    ("certificate verify failed", "tls"), ("server certificate for", "tls"),
    ("server does not support SSL", "tls"), ("SSL error", "tls"),
    ("no pg_hba.conf entry", "28000"), ("pg_hba.conf rejects", "28000"),
    ("role \"", "28000"), ("database \"", "3D000"), ("permission denied", "42501"),
    ("too many clients", "53300"), ("remaining connection slots are reserved", "53300"),
]


def refusal(error: Exception) -> str | None:
    """Why a server that answered refused the connection (None: it did not answer, or is starting or
    stopping, which is what "down" means)."""
    code = getattr(error, "sqlstate", None)
    if code in _REFUSALS:
        return _REFUSALS[code]
    text = str(error)
    for needle, c in _REFUSAL_TEXT:
        if needle in text and (not needle.endswith('"') or "does not exist" in text):
            return _REFUSALS[c]
    return None
