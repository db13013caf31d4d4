"""The Grafana dashboards: the checked-in JSON is what the code generates, its structure
is what Grafana provisions, and every panel's query parses and returns data from a
Prometheus scraping a live worker and MLLP listener on the real broker and a worklist
server (whose unattended alert fires with the site's runbook link)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.mllp.framing import frame
from streams.monitoring.dashboards import DASHBOARDS, DATASOURCE_UID, main
from streams.store import open_store, parse_failure
from tests.deploy.tools import ROOT, fast_rules, free_port, scraped, stack, stack_env, tool
from tests.streams.store.support import line as failure_line
from tests.streams.store.support import record

GRAFANA = ROOT / "deploy" / "grafana"
HL7 = ROOT / "tests" / "fixtures" / "samples" / "hl7v2"
PANEL_TYPES = {"timeseries", "stat", "table", "row"}
# what Grafana substitutes before sending a query (an "All" site selection is .*)
VARIABLES = {"$__rate_interval": "1m", "$site": ".*"}
MISSED = 'outcome="missed",site="north"} '
RUNBOOK_BASE = "https://intranet.example.org/carewatch/runbooks"


def boards() -> dict[str, dict[str, Any]]:
    return {name: json.loads((GRAFANA / "dashboards" / name).read_text()) for name in DASHBOARDS}


def queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, PromQL as Grafana sends it) of every panel target."""
    out = []
    for name, board in boards().items():
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for var, value in VARIABLES.items():
                    expr = expr.replace(var, value)
                out.append((name, panel["title"], expr))
    return out


def test_the_checked_in_json_is_what_the_code_generates() -> None:
    # the repository's files (a compiled test pass imports the module from a build copy)
    out = str(GRAFANA / "dashboards")
    assert main(["--check", "--out", out]) == 0, "run python -m streams.monitoring.dashboards"


def test_the_dashboards_are_what_grafana_provisions() -> None:
    uids = set()
    for name, board in boards().items():
        assert board["uid"] not in uids and board["title"].startswith("Carewatch")
        uids.add(board["uid"])
        assert board["panels"], name
        for panel in board["panels"]:
            assert panel["type"] in PANEL_TYPES, panel["type"]
            pos = panel["gridPos"]
            assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24 and pos["h"] > 0
            if panel["type"] == "row":
                continue
            assert panel["title"] and panel.get("description"), panel["title"]
            assert panel["datasource"]["uid"] == DATASOURCE_UID
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                assert target["expr"] and target["datasource"]["uid"] == DATASOURCE_UID
        for var in board.get("templating", {}).get("list", []):
            assert var["datasource"]["uid"] == DATASOURCE_UID
    sources = yaml.safe_load((GRAFANA / "provisioning/datasources/carewatch.yml").read_text())
    assert [d["uid"] for d in sources["datasources"]] == [DATASOURCE_UID]
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/carewatch.yml").read_text())
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/carewatch"


def test_the_panel_queries_are_valid_promql() -> None:
    """Without a server: promtool parses every query inside a throwaway rule file."""
    rules = {
        "groups": [
            {
                "name": "panels",
                "rules": [
                    {"record": f"panel:query{i}", "expr": expr}
                    for i, (_, _, expr) in enumerate(queries())
                ],
            }
        ]
    }
    proc = subprocess.run(
        [tool("promtool"), "check", "rules", "/dev/stdin"],
        input=yaml.safe_dump(rules),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --------------------------------------------------------------------------- live


def event(etype: str, hours_ago: float, refs: dict[str, str], **attrs: Any) -> bytes:
    t = time.time() - hours_ago * 3600
    body = {
        "id": f"ev-{uuid.uuid4().hex}",
        "type": etype,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(t)),
        "patient": "P-DASH-1",
        "refs": refs,
        "attrs": attrs,
    }
    return json.dumps(body).encode() + b"\n"


def prom_api(port: int, path: str) -> dict[str, Any]:
    """GET /api/v1/PATH of the Prometheus on ``port``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/{path}", timeout=10) as resp:
        return dict(json.load(resp))


def prom_query(port: int, expr: str) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return dict(json.load(resp))
    except urllib.error.HTTPError as exc:  # a query that does not parse: 400 with the error
        return dict(json.load(exc))


@pytest.mark.kafka
def test_every_panel_returns_data_for_a_live_run(kafka_bootstrap: str, tmp_path: Path) -> None:
    from tests.streams.kafka.harness import Setup

    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "metrics:\n  site_labels: [north]\n  feeds:\n"
        "    pas: {match: {type: 'appointment.*'}, max_gap: 1h}\n"
        "    lab: {match: {type: ['order.*', 'result.*']}, max_gap: 1h}\n"
    )
    s = Setup(kafka_bootstrap, tmp_path, partitions=1)
    worker_port, mllp_port, mllp_metrics = free_port(), free_port(), free_port()
    web_port, web_metrics = free_port(), free_port()
    listener = server = None
    env = stack_env(
        tmp_path / "stack",
        WORKER_TARGETS=f"127.0.0.1:{worker_port}",
        MLLP_TARGETS=f"127.0.0.1:{mllp_metrics}",
        SERVE_TARGETS=f"127.0.0.1:{web_metrics}",
        RUNBOOK_BASE=RUNBOOK_BASE,
        RULES_DIR=str(fast_rules(tmp_path / "rules")),
    )
    # the worklist: a store with open failures (one taken), served with its metrics
    store_path = str(tmp_path / "worklist.db")
    store = open_store(store_path, create=True)
    store.add_user("ann", "coordinator", "ann's long password")
    store.upsert([parse_failure(failure_line(record(n, site="north"))) for n in range(1, 4)])
    ann = store.user("ann")
    assert ann is not None
    store.act(ann, "f000001", "take", 1)
    store.close()
    prom_port = int(env["CAREWATCH_PROMETHEUS_PORT"])
    try:
        s.start_worker("--rules", str(rules), "--metrics-port", str(worker_port))
        listener = subprocess.Popen(
            [
                *(sys.executable, "-m", "streams.cli", "listen", "mllp"),
                *("--port", str(mllp_port), "--kafka-bootstrap", kafka_bootstrap),
                *("--kafka-topic", s.topics["events"], "--rejected", str(tmp_path / "rej")),
                *("--metrics-port", str(mllp_metrics), "--feeds", str(rules)),
            ],
            env=s.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        server = subprocess.Popen(
            [
                *(sys.executable, "-m", "streams.cli", "serve", "--store", store_path),
                *("--port", str(web_port), "--metrics-port", str(web_metrics)),
                *("--rules", str(rules)),
            ],
            env=s.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        out = stack("start", env)
        assert out.returncode == 0, out.stderr
        # the listener serves metrics once it listens for MLLP
        s.wait_for(
            "the MLLP listener",
            lambda: "carewatch_mllp_messages_received_total" in scraped(mllp_metrics),
            timeout=60,
            every=0.5,
        )

        # Two waves of the same traffic: the first makes every series, the second moves
        # them while Prometheus watches (a counter's first sample has no increase).
        for wave in range(2):
            o1, o2, o3 = (f"O{wave}-{n}" for n in range(3))
            s.publish(
                [
                    event("order.placed", 3, {"order": o1}, priority="stat", site="north"),
                    event("order.placed", 3, {"order": o2}, priority="stat", site="north"),
                    event("result.reported", 2.5, {"order": o2}),
                    event("result.reported", 3, {"order": o3}, critical=True, site="north"),
                    event("appointment.booked", 0, {"appointment": f"A{wave}"}),
                    b"not json\n",
                ],
                name=f"wave{wave}.jsonl",
            )
            s.wait_for(
                "the stat order to be declared missed",
                lambda wave=wave: (
                    _value(scraped(worker_port), "carewatch_outcomes_total", MISSED) >= wave + 1
                ),
                timeout=120,
                every=1.0,
            )
            # the result turns up after the order was declared missed: amended to late
            s.publish([event("result.reported", 1, {"order": o1})], name=f"late{wave}.jsonl")
            with socket.create_connection(("127.0.0.1", mllp_port), timeout=20) as conn:
                for name in ("ORM-O01-01.hl7", "ORU-R01-01.hl7", "ADT-A03-01.hl7"):
                    conn.sendall(frame((HL7 / name).read_bytes().lstrip(b"\xef\xbb\xbf")))
                    conn.recv(65536)
                conn.sendall(frame(b"garbage"))
                conn.recv(65536)
            time.sleep(3.0)  # a few scrapes in between

        empty: list[str] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            empty = []
            for board, title, expr in queries():
                answer = prom_query(prom_port, expr)
                assert answer["status"] == "success", f"{board} / {title}: {answer}"
                if not answer["data"]["result"]:
                    empty.append(f"{board} / {title}: {expr}")
            if not empty:
                break
            time.sleep(2.0)
        assert not empty, "panels without data:\n" + "\n".join(empty) + "\n" + s.logs()
        sites = json.load(
            urllib.request.urlopen(
                f"http://127.0.0.1:{prom_port}/api/v1/label/site/values?"
                + urllib.parse.urlencode({"match[]": "carewatch_outcomes_total"}),
                timeout=10,
            )
        )
        assert "north" in sites["data"]  # the QI dashboard's site variable has values

        # the worklist's failures are months past their deadline and two are untaken:
        # the unattended alert fires, its runbook link under the site's published base
        unattended: list[dict[str, Any]] = []
        while time.monotonic() < deadline + 60 and not unattended:
            alerts = prom_api(prom_port, "alerts")["data"]["alerts"]
            unattended = [a for a in alerts if a["labels"]["alertname"] == "CarewatchWorklistUnattended"]  # fmt: skip
            time.sleep(1.0)
        assert unattended, "CarewatchWorklistUnattended never fired"
        assert unattended[0]["labels"]["site"] == "north"
        link = unattended[0]["annotations"]["runbook_url"]
        assert link == f"{RUNBOOK_BASE}/worklist-unattended.md"
    finally:
        stack("stop", env)
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if listener is not None:
            listener.terminate()
            listener.wait(timeout=30)
        s.stop()


def _value(exposition: str, name: str, labels_end: str) -> float:
    """Sum of the samples of ``name`` whose label set ends with ``labels_end``."""
    total = 0.0
    for line in exposition.splitlines():
        if line.startswith(name + "{") and labels_end in line:
            total += float(line.rsplit(" ", 1)[1])
    return total
