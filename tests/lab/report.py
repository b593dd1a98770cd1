"""The lab report: a pytest plugin that turns the phases (tests) of a lab run into JSON and a table.

Each phase test fills a dict through the `phase` fixture (what it measured, one `detail` line for the
table); this plugin adds the outcome and duration pytest saw, writes build/lab-report.json (and a copy
in KUBELAB_STATE) after every phase, and prints the table at the end of the run. JUnit XML comes from
pytest itself (--junitxml).
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import time
from typing import Any

import pytest
from common import BUILD, LOGS, STATE, log


def report_files(kind: str) -> tuple:
    """Where a run's report goes: the lab's and e2e's to lab-report.json, the benchmark's to bench-report.json."""
    name = "bench-report.json" if kind == "bench" else "lab-report.json"
    return STATE / name, BUILD / name


class LabReport:
    def __init__(self, kind: str) -> None:
        self.data: dict[str, Any] = {
            "kind": kind,
            "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "host": socket.gethostname(),
            "result": "running",
            "phases": [],
        }
        self.t0 = time.monotonic()
        self.files = report_files(kind)
        self.by_test: dict[str, dict[str, Any]] = {}

    def phase(self, nodeid: str, name: str) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": name, "status": "running"}
        self.data["phases"].append(entry)
        self.by_test[nodeid] = entry
        log(f"---- phase {name}")
        return entry

    # pytest hooks -----------------------------------------------------------------------------

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        outcome = yield
        report = outcome.get_result()
        entry = self.by_test.get(item.nodeid)
        if entry is None:
            return
        # setup counts: the session fixture starts the nodes in the setup of the first phase that needs them
        if report.when != "teardown":  # the last phase's teardown is the lab's: its own "teardown" entry
            entry["seconds"] = round(entry.get("seconds", 0) + call.duration, 1)
        if report.when == "call":
            entry["status"] = "ok" if report.passed else report.outcome
        if report.failed:
            message = str(call.excinfo.value) if call.excinfo else report.longreprtext
            entry["status"] = "failed" if report.when == "call" else f"error in {report.when}"
            entry["error"] = message[:4000]
            entry["detail"] = message.strip().splitlines()[0][:100] if message.strip() else "failed"
            text = self.diagnose()
            report.sections.append(("lab diagnostics (tail)", text[-15000:]))
        self.save()

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if not self.data["phases"]:  # nothing ran (--collect-only, -k matching nothing): keep the last report
            return
        failed = any(p["status"] not in ("ok",) for p in self.data["phases"])
        self.data["result"] = "passed" if exitstatus == 0 and not failed and self.data["phases"] else "failed"
        self.save()

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.data["phases"]:
            return
        terminalreporter.write_sep("=", "lab report")
        terminalreporter.write_line(self.table())
        terminalreporter.write_line(f"report: {self.files[1]}  logs: {LOGS}")

    # ------------------------------------------------------------------------------------------

    @staticmethod
    def diagnose() -> str:
        import nodes  # not at import time: the plugin is loaded before the lab is needed

        path = LOGS / "diagnostics.txt"
        text = nodes.diagnose(path)
        log(f"diagnostics saved to {path}")
        return text

    def save(self) -> None:
        self.data["total_seconds"] = round(time.monotonic() - self.t0, 1)
        text = json.dumps(self.data, indent=2, default=str) + "\n"
        for path in self.files:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)

    def table(self) -> str:
        rows = [("phase", "status", "seconds", "detail")]
        for p in self.data["phases"]:
            rows.append((str(p["name"]), str(p["status"]), f"{p.get('seconds', 0):.1f}", str(p.get("detail", ""))))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}" for r in rows]
        lines.append(f"total {self.data.get('total_seconds')} s, result: {self.data.get('result')}")
        for name, st in (self.data.get("nodes") or {}).items():
            lines.append(
                f"  {name}: {'Ready' if st.get('ready') else 'NotReady'} {','.join(st.get('roles', []))} "
                f"kubelet {st.get('kubelet')} runtime {st.get('runtime')}"
            )
        checks = self.widest_checks()
        if checks:
            lines.append(f"  checks ({checks[0]}): " + ", ".join(f"{n} {c}" for n, c in checks[1].items()))
        versions = dict(self.data.get("versions") or {})
        bundle = versions.pop("bundle", None)
        if versions:
            lines.append("  versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
        if bundle:
            lines.append("  bundle: " + ", ".join(f"{k} {v}" for k, v in bundle.items()))
        return "\n".join(lines)

    def widest_checks(self) -> tuple[str, dict[str, str]] | None:
        """The tests/verify run with the most checks: check name -> "passed/total" over its nodes."""
        runs = [(len(c), str(p["name"]), c) for p in self.data["phases"] for c in [p.get("checks")] if c]
        if not runs:
            return None
        _count, phase, checks = max(runs, key=lambda r: r[0])
        grouped: dict[str, list[str]] = {}
        for name, outcome in checks.items():
            grouped.setdefault(name.split("::", 1)[-1].split("[", 1)[0].removeprefix("test_"), []).append(outcome)
        return phase, {n: f"{o.count('passed')}/{len(o)}" for n, o in grouped.items()}
