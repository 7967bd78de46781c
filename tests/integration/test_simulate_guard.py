"""The simulator's guard against the real embedded stack: the session's own Postgres server and chdb pass;
pointed at anything else it stops before the first delete."""

from __future__ import annotations

import pytest
from label_backfill.dev.simulate import NotEmbeddedError, refuse_unless_embedded, simulate

pytestmark = pytest.mark.integration


class RemoteClickHouse:
    uri = "http://label_backfill:secret@clickhouse-s1:8123"

    def __getattr__(self, name):
        raise AssertionError(f"used {name!r} of a refused ClickHouse")


def test_the_session_stack_is_embedded(pg, ch):
    refuse_unless_embedded(pg, ch)  # the stack of LABEL_BACKFILL_LOCAL_DIR, as the simulator checks it


def test_a_foreign_clickhouse_stops_it_before_postgres_is_touched(pg, ch):
    with pg.cursor() as cur:
        cur.execute("INSERT INTO profiles (customer_id, region) VALUES ('guard-probe', 'us-east-1')")
    pg.commit()
    try:
        with pytest.raises(NotEmbeddedError, match="not the embedded stack's in-process chdb"):
            simulate(pg, RemoteClickHouse(), scale_name="small", seed=7)
        with pg.cursor() as cur:
            cur.execute("SELECT count(*) FROM profiles WHERE customer_id = 'guard-probe'")
            assert cur.fetchone()[0] == 1
    finally:
        with pg.cursor() as cur:
            cur.execute("DELETE FROM profiles WHERE customer_id = 'guard-probe'")
        pg.commit()
