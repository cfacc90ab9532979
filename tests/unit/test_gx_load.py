"""Great Expectations loads once per process, without the packages only unused expectations need."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_gx_loads_once_and_leaves_scipy_and_altair_for_first_use():
    # A fresh interpreter: this test process may have imported any of these already.
    code = textwrap.dedent("""
        import sys
        from drdrill.drills.dataquality import _gx_context, _import_gx, load_gx

        assert load_gx() > 0 and load_gx() == 0.0
        assert type(sys.modules["scipy.stats"]).__name__ == "_LazyModule"
        assert type(sys.modules["altair"]).__name__ == "_LazyModule"
        gx, gxe = _import_gx()
        assert gxe.ExpectTableRowCountToBeBetween and _gx_context(gx).data_sources
        # The expectation that needs them still gets them, on first use.
        from great_expectations.expectations.core import expect_column_kl_divergence_to_be_less_than as kl

        assert kl.stats.entropy([0.5, 0.5], [0.5, 0.5]) == 0.0
        assert kl.alt.Chart is not None
        assert type(sys.modules["scipy.stats"]).__name__ == "module"
        # Nothing else is imported lazily once GX is loaded.
        import json
        assert type(json).__name__ == "module"
        print("ok")
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip().endswith("ok")
