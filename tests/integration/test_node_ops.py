"""Server actions of the failover drills on the real sandbox, at the smallest level that uses them."""

from __future__ import annotations

import pytest

from drdrill.drills.failover.node_ops import NodeOps
from drdrill.hooks import postgres as pg

pytestmark = pytest.mark.sandbox


def test_stale_slot_cleanup_drops_only_the_drills_own_physical_slots(estate):
    c = estate.cluster("main")
    node = c.primary
    mine = node.name  # ensure_slot names a slot after the node that streams from it

    def slots() -> set[str]:
        with pg.connect(c, node.host, node.port, "postgres") as conn:
            return {r[0] for r in pg.query(conn, "SELECT slot_name FROM pg_replication_slots")}

    with pg.connect(c, node.host, node.port, "postgres") as conn:
        pg.query(conn, "SELECT pg_create_logical_replication_slot('cdc_orders', 'test_decoding')")
        pg.query(conn, "SELECT pg_create_physical_replication_slot('backup_tool')")
        pg.query(conn, "SELECT pg_create_physical_replication_slot(%s)", (mine,))
    try:
        dropped = NodeOps(c).drop_stale_slots(node)
        assert dropped == [mine]
        left = slots()
        assert {"cdc_orders", "backup_tool"} <= left and mine not in left
        # The streaming standby's own slot is active: never touched.
        assert {s.name for s in c.standbys} <= left
    finally:
        with pg.connect(c, node.host, node.port, "postgres") as conn:
            for name in ("cdc_orders", "backup_tool", mine):
                pg.query(conn, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                               "WHERE slot_name = %s", (name,))
