"""Test configuration shared by tests/ and the notebooks (run by nbval).

A plain `pytest` is always quick: NST_QUICK=1 is set here, before any notebook kernel
starts (nbval's --nbval-current-env kernels inherit our environment). Each notebook's
`notebook_setup(name)` writes its name to NST_QUICK_LOG in quick mode; at the end of the
session every notebook that ran must be in that log, or the run fails: a notebook that
ignored quick mode would otherwise run at full size unnoticed.
"""

import os
import tempfile
from pathlib import Path

os.environ["NST_QUICK"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")
_log = Path(tempfile.gettempdir()) / f"nst-quick-log-{os.getpid()}.txt"
_log.write_text("", encoding="utf-8")
os.environ["NST_QUICK_LOG"] = str(_log)


def pytest_sessionfinish(session, exitstatus):
    notebooks = {Path(str(item.fspath)).stem for item in getattr(session, "items", [])
                 if str(item.fspath).endswith(".ipynb")}
    if not notebooks:
        return
    seen = set(_log.read_text(encoding="utf-8").split())
    missing = sorted(notebooks - seen)
    if missing:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = ("notebooks that never ran notebook_setup() in quick mode (NST_QUICK=1): "
                   + ", ".join(missing))
        if reporter:
            reporter.write_line("FAILED " + message, red=True)
        session.exitstatus = 1
