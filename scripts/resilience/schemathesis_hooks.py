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

# Every write to sessions and bookings bumps `version` and `updated_at`, and idempotency
# keys are only ever added (or swept after a day), so counts, version sums and newest
# timestamps change exactly when the rows do, at a fraction of the cost of hashing them.
_FINGERPRINT = """
SELECT concat_ws('/',
    (SELECT concat_ws(',', count(*), sum(version), max(updated_at)) FROM sessions),
    (SELECT concat_ws(',', count(*), sum(version), max(updated_at)) FROM bookings),
    (SELECT concat_ws(',', count(*), max(created_at)) FROM idempotency_keys)),
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
