"""Baselines for scripts/bench: the least a Flask route can cost on this machine, without a
database statement, with one, and with the export's three. Served by the same gunicorn
configuration as the service
(`gunicorn -c service/gunicorn_conf.py scripts.benchmark.baseline_app:app`),
against the same MariaDB.

* `GET /b0`: a bare Flask route, no database.
* `GET /b1`: one primary-key SELECT (`api_keys` row `BENCH_B1_ID`).
* `GET /b2`: one single-row autocommit UPDATE (`calls_made + 1` on `api_keys` row `BENCH_B2_ID`):
  the least a durable per-request counter can cost. One row, as the service's F run meters one key.
* `GET /b3`: the three statements an admitted export runs, with the service's own SQL and nothing
  around them (no hooks, validation, audit, log or headers): the key by hash (`BENCH_B3_HASH`), the
  quota UPDATE, a one-article page. F against B3 is the service's own cost; B3 against B2 the cost
  of the statements.
* `GET /b4`: the two statements an admitted export runs when the worker's cache holds its key's
  row: the quota UPDATE (`BENCH_B4_ID`) and the page as the service reads it (`JSON_OBJECTS`, one
  formed object per row, through a tuple cursor), and nothing around them. No service can run F
  faster than this: B4/B2 is the most F/B2 can be with the service's own work at nothing, and F/B4
  is what that work costs.
* `GET /b5` (not run unless asked: `--only ...,B5`): B4's two statements in one round trip, a CALL
  of a stored procedure the benchmark creates in its throw-away database (seeding.PROCEDURE; the
  service has none). B5/B2 is what F/B2's ceiling would be with that one round trip.
* `GET /b6` (not run unless asked: `--only ...,B6`): B4's two statements prepared once per
  connection and run with `EXECUTE ... USING` (seeding.Prepared; MariaDB only). B6/B2 is what
  F/B2's ceiling would be if the server did not parse each statement.

Each worker opens its own PyMySQL connection on first use, after gunicorn has forked. Only the
service's SQL text is borrowed (for B3-B6); the service never imports this module.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

import pymysql
import pymysql.cursors
from flask import Flask, Response

from service.repositories.api_keys import CONSUME_QUOTA, FIND_BY_HASH
from service.repositories.articles import JSON_OBJECTS, PAGE

from .seeding import PREPARED_ADMIT, PREPARED_PAGE, PROCEDURE_CALL, prepare

app = Flask(__name__)
_conn: pymysql.Connection | None = None
_pid: int | None = None
_prepared_on: pymysql.Connection | None = None  # the connection B6's statements are prepared on

SELECT_ONE = "SELECT id, rate_limit, calls_made, last_reset FROM api_keys WHERE id = %s"
UPDATE_ONE = "UPDATE api_keys SET calls_made = calls_made + 1 WHERE id = %s"
B1_ID = int(os.environ.get("BENCH_B1_ID", "0"))
B2_ID = int(os.environ.get("BENCH_B2_ID", "0"))
B3_HASH = os.environ.get("BENCH_B3_HASH", "")
B4_ID = int(os.environ.get("BENCH_B4_ID", "0"))
B5_ID = int(os.environ.get("BENCH_B5_ID", "0"))
B6_ID = int(os.environ.get("BENCH_B6_ID", "0"))


def connection() -> pymysql.Connection:
    global _conn, _pid
    if _conn is None or _pid != os.getpid():
        _conn = pymysql.connect(
            host=os.environ.get("DB_HOST", "127.0.0.1"),
            port=int(os.environ.get("DB_PORT", "3306")),
            user=os.environ.get("DB_USER", "root"),
            password=os.environ.get("DB_PASS", ""),
            database=os.environ["DB_NAME"],
            charset="utf8mb4",
            autocommit=True,
            cursorclass=pymysql.cursors.DictCursor,
        )
        _pid = os.getpid()
    return _conn


def _json(body: dict) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), mimetype="application/json")


@app.get("/b0")
def b0() -> Response:
    return _json({"status": "success"})


@app.get("/b1")
def b1() -> Response:
    with connection().cursor() as cur:
        cur.execute(SELECT_ONE, (B1_ID,))
        row = cur.fetchone()
    return _json(
        {
            "status": "success",
            "id": row["id"],
            "limit": row["rate_limit"],
            "used": row["calls_made"],
        }
    )


@app.get("/b2")
def b2() -> Response:
    with connection().cursor() as cur:
        changed = cur.execute(UPDATE_ONE, (B2_ID,))
    return _json({"status": "success", "updated": changed})


@app.get("/b3")
def b3() -> Response:
    with connection().cursor() as cur:
        cur.execute(FIND_BY_HASH, {"key_hash": B3_HASH})
        key = cur.fetchone()
        today = datetime.now(UTC).date()
        admitted = (
            cur.execute(CONSUME_QUOTA, {"key_id": key["id"], "today": today, "scope": "export"})
            == 1
        )
        cur.execute(PAGE, {"before_id": None, "since": None, "limit": 2})
        rows = cur.fetchall()
    article = rows[0]
    return _json(
        {
            "status": "success",
            "admitted": admitted,
            "used": cur.lastrowid,
            "data": [{**article, "updated_at": article["updated_at"].isoformat()}],
        }
    )


_PAGE_PARAMS = {"before_id": None, "since": None, "limit": 2}


def _admit_params(key_id: int) -> dict:
    return {"key_id": key_id, "today": datetime.now(UTC).date(), "scope": "export"}


@app.get("/b4")
def b4() -> Response:
    return _admit_and_page(CONSUME_QUOTA, _admit_params(B4_ID), JSON_OBJECTS, _PAGE_PARAMS)


@app.get("/b5")
def b5() -> Response:
    with connection().cursor(pymysql.cursors.Cursor) as cur:
        cur.execute(PROCEDURE_CALL, {**_admit_params(B5_ID), **_PAGE_PARAMS})
        results = [cur.fetchall()]
        while cur.nextset():
            results.append(cur.fetchall())
    # Admitted: the count, the page, the CALL's own status; refused: only the status.
    if len(results) < 3:
        return _admission(False, None, b"null")
    return _admission(True, results[0][0][0], results[1][0][0])


@app.get("/b6")
def b6() -> Response:
    global _prepared_on
    conn = connection()
    if _prepared_on is not conn:
        with conn.cursor() as cur:
            prepare(cur)
        _prepared_on = conn
    return _admit_and_page(
        PREPARED_ADMIT.execute,
        PREPARED_ADMIT.args(_admit_params(B6_ID)),
        PREPARED_PAGE.execute,
        PREPARED_PAGE.args(_PAGE_PARAMS),
    )


def _admit_and_page(admit: str, admit_args, page: str, page_args) -> Response:
    """B4's and B6's two round trips: the quota UPDATE, then the page."""
    with connection().cursor(pymysql.cursors.Cursor) as cur:
        admitted = cur.execute(admit, admit_args)
        used = cur.lastrowid if admitted else None
        cur.execute(page, page_args)
        objects = [row[0] for row in cur.fetchall()]
    return _admission(bool(admitted), used, objects[0])


def _admission(admitted: bool, used: int | None, article: bytes) -> Response:
    """B4's, B5's and B6's body: the admission, the count, and the page's first object as formed
    by the database (spliced, not parsed, as the service does)."""
    head = f'{{"status":"success","admitted":{int(admitted)},"used":{json.dumps(used)},"data":['
    return Response(head.encode() + article + b"]}", mimetype="application/json")
