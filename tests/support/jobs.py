"""Job bodies shared by the jobs tests and the Qt adapter's tests (module level: a child
process imports them by name)."""
from __future__ import annotations

import time


def work_until_cancelled(ctx, limit_s=120.0):
    """Does one piece of work after another, handing each over, until cancelled."""
    done = []
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        ctx.check_cancel()
        done.append(len(done))
        ctx.partial(list(done))
        ctx.progress(None, f"{len(done)} pieces")
        time.sleep(0.01)
    raise AssertionError("never cancelled")
