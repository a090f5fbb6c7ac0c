"""Schemathesis hooks for `make resilience`: a rejected request must change nothing.

Before every call the bookings tables are fingerprinted; the check
`rejected_request_changes_nothing` fails any 4xx answer after which the fingerprint
differs. Holds that expire on their own in that moment are the one change allowed
(the hold sweeper runs beside the fuzzer), and are told apart by their timestamps.
"""
import os

import psycopg2
import schemathesis
from schemathesis.core.failures import Failure

_connection = psycopg2.connect(os.environ["VACANCY_RESILIENCE_DATABASE_URL"])
_connection.autocommit = True
_state = {}

_FINGERPRINT = """
SELECT md5(
    coalesce((SELECT string_agg(md5(s::text), '' ORDER BY id) FROM sessions s), '') ||
    coalesce((SELECT string_agg(md5(b::text), '' ORDER BY id) FROM bookings b), '') ||
    coalesce((SELECT string_agg(md5(k::text), '' ORDER BY caller, key) FROM idempotency_keys k), '')),
    clock_timestamp()
"""


def _fingerprint():
    with _connection.cursor() as cursor:
        cursor.execute(_FINGERPRINT)
        return cursor.fetchone()


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    _state["before"] = _fingerprint()


@schemathesis.check
def rejected_request_changes_nothing(ctx, response, case):
    if not 400 <= response.status_code < 500 or "before" not in _state:
        return None
    digest, taken_at = _state["before"]
    after, _ = _fingerprint()
    if after == digest:
        return None
    with _connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM bookings WHERE status = 'expired' AND updated_at >= %s", (taken_at,))
        if cursor.fetchone()[0] > 0:
            return None  # a hold expired meanwhile; inconclusive, not a failure
    raise Failure(
        operation=case.operation.label,
        title="A rejected request changed the database",
        message=f"{case.method} {case.path} answered {response.status_code} but sessions, bookings or idempotency keys changed",
    )
