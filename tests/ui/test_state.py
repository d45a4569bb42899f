"""ui/state.py helpers that every page uses: waiting for a background job."""

from __future__ import annotations

import threading


def _statuses(node) -> list:
    found = []
    for child in getattr(node, "children", {}).values():
        if type(child).__name__ == "Status":
            found.append(child.proto)
        found.extend(_statuses(child))
    return found


def test_a_running_job_is_shown_running_not_complete():
    # `with st.status(...)` marks the box complete (a check mark) when the block ends, while the job runs on.
    import builtins

    from streamlit.testing.v1 import AppTest

    from ragtune import api

    release = threading.Event()
    job = api.jobs.start(lambda j: release.wait(30), name="ui-state-test")
    builtins._ui_state_test_job = job
    try:
        at = AppTest.from_string(
            "import builtins\nfrom ragtune.ui import state\n"
            "state.wait_for(builtins._ui_state_test_job, 'Opening the index ...')\n"
        ).run()
        assert not at.exception
        [status] = _statuses(at._tree)
        assert status.label == "Opening the index ..." and status.state == status.RUNNING
    finally:
        release.set()
        job.wait(30)
        del builtins._ui_state_test_job
