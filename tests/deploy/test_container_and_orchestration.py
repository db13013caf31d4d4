"""The deployable stack: the container image definition, deploy/compose (checked with
``docker-compose config``, which needs no daemon) and deploy/kubernetes (validated
offline against the Kubernetes schemas that kubernetes-validate ships)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from detectors.rules import load_settings, parse_settings
from streams.cli import build_parser
from tests.deploy.tools import ROOT, run, tool

DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose" / "compose.yml"
K8S = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
K8S_VERSION = "1.30"


def manifests() -> list[dict[str, Any]]:
    return [doc for path in K8S for doc in yaml.safe_load_all(path.read_text()) if doc]


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in manifests() if d["kind"] == kind}


def carewatch_args(args: list[str]) -> None:
    """The arguments parse as a carewatch command line (flags exist, values valid)."""
    build_parser().parse_args(args)


# ----------------------------------------------------------------- the image


def test_the_image_runs_every_command_as_an_unprivileged_user() -> None:
    text = (DEPLOY / "Containerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", text, re.M)
    assert len(stages) == 2 and "CAREWATCH_COMPILE=1" in text  # compiled in a build stage
    assert re.search(r'^ENTRYPOINT \["carewatch"\]', text, re.M)
    assert re.search(r"^USER 10001", text, re.M)
    for src in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for name in src.split():
            assert (ROOT / name).exists(), name
    assert ":latest" not in text


# ----------------------------------------------------------------- compose


def test_docker_compose_config_accepts_the_compose_file() -> None:
    proc = run(tool("docker-compose"), "-f", str(COMPOSE), "config", "-q")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_compose_stack_has_every_part_and_no_secret_in_it() -> None:
    doc = yaml.safe_load(COMPOSE.read_text())
    services = doc["services"]
    for name in (
        *("kafka", "worker", "mllp", "store-init", "sink", "serve"),
        *("postgres", "prometheus", "alertmanager", "grafana"),
    ):
        assert name in services, name
    for name, svc in services.items():
        env = svc.get("environment") or {}
        for key in env:
            assert "PASSWORD" not in key or key.endswith("_FILE"), f"{name}: {key}"
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).exists(), f"{name}: {source}"
        assert ":latest" not in svc.get("image", ":x")
    for secret in doc["secrets"].values():
        assert secret["file"].startswith("./secrets/")
    assert "deploy/compose/secrets/" in (ROOT / ".gitignore").read_text()
    carewatch_args(services["worker"]["command"])
    carewatch_args(services["mllp"]["command"])
    carewatch_args(services["kafka-init"]["command"])
    for name in ("store-init", "sink", "serve"):
        carewatch_args(services[name]["command"])
        # the database password from the secret file, never in the URL
        assert "postgres_password" in services[name]["secrets"], name
        assert not re.search(r"://[^@/]*:[^@/]*@", " ".join(services[name]["command"])), name
    assert "--metrics-port=9466" in services["serve"]["command"]
    grafana = " ".join(services["grafana"]["volumes"])
    assert "../grafana/provisioning:" in grafana and "../grafana/dashboards:" in grafana


def test_the_compose_prometheus_and_rules_load() -> None:
    proc = run(
        tool("promtool"), "check", "config", "--syntax-only", str(COMPOSE.parent / "prometheus.yml")
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert load_settings(COMPOSE.parent / "rules.yaml").feeds


# ----------------------------------------------------------------- kubernetes


def test_every_manifest_is_valid_against_the_kubernetes_schemas() -> None:
    assert len(manifests()) >= 15
    for doc in manifests():
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_a_broken_manifest_is_caught() -> None:
    """The validation can fail: a Deployment with a misspelt field is refused."""
    doc = by_kind("Deployment")["carewatch-worker"]
    broken = {**doc, "spec": {**doc["spec"], "replica": 2}}
    try:
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError:
        return
    raise AssertionError("a misspelt field passed validation")


def test_workers_scale_with_the_partitions_and_every_pod_is_sized_and_probed() -> None:
    env = by_kind("ConfigMap")["carewatch-env"]["data"]
    hpa = by_kind("HorizontalPodAutoscaler")["carewatch-worker"]
    assert hpa["spec"]["maxReplicas"] == int(env["CAREWATCH_PARTITIONS"])
    for kind in ("Deployment", "StatefulSet"):
        for name, doc in by_kind(kind).items():
            for c in doc["spec"]["template"]["spec"]["containers"]:
                assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"]
                assert "readinessProbe" in c and "livenessProbe" in c, name
                assert ":latest" not in c["image"] and ":" in c["image"], name
                if c["image"].startswith("carewatch:"):
                    carewatch_args(
                        [a.replace("$(CAREWATCH_KAFKA_BOOTSTRAP)", "kafka:9092") for a in c["args"]]
                    )
    mllp = by_kind("Service")["carewatch-mllp"]
    assert any(p["port"] == 2575 for p in mllp["spec"]["ports"])


def test_configuration_has_one_source() -> None:
    """The ConfigMaps the apply script makes from files are those the pods mount; the
    rules file in the cluster is the compose one."""
    apply = (DEPLOY / "kubernetes" / "apply").read_text()
    made = set(re.findall(r"(?:configmap|generic) (carewatch-[a-z-]+)", apply))
    defined = set(by_kind("ConfigMap"))
    mounted = set()
    for kind in ("Deployment", "StatefulSet", "Job"):
        for doc in by_kind(kind).values():
            for vol in doc["spec"]["template"]["spec"].get("volumes", []):
                if "configMap" in vol:
                    mounted.add(vol["configMap"]["name"])
                if "secret" in vol:
                    mounted.add(vol["secret"]["secretName"])
    assert mounted <= made | defined, mounted - made - defined
    rules = by_kind("ConfigMap")["carewatch-rules"]["data"]["rules.yaml"]
    compose_rules = (COMPOSE.parent / "rules.yaml").read_text()
    assert parse_settings(rules).feeds == parse_settings(compose_rules).feeds
    prom = by_kind("ConfigMap")["carewatch-prometheus"]["data"]["prometheus.yml"]
    proc = subprocess.run(
        [tool("promtool"), "check", "config", "--syntax-only", "/dev/stdin"],
        input=prom,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_scripts_parse() -> None:
    for script in (DEPLOY / "kubernetes" / "apply", DEPLOY / "compose" / "make-secrets"):
        assert run("bash", "-n", str(script)).returncode == 0, script
        assert Path(script).stat().st_mode & 0o111


def test_the_worklist_runs_in_both_stacks_with_its_password_from_a_file() -> None:
    """The store's schema job, the Kafka sink and the worklist (with its metrics scraped)
    are in the manifests as in compose; no database URL carries a password."""
    deployments = by_kind("Deployment")
    assert "carewatch-store-init" in by_kind("Job")
    for name in ("carewatch-sink", "carewatch-serve", "carewatch-store-init"):
        doc = deployments.get(name) or by_kind("Job")[name]
        (c,) = doc["spec"]["template"]["spec"]["containers"]
        carewatch_args(c["args"])
        env = {e["name"]: e["value"] for e in c.get("env", [])}
        assert env["CAREWATCH_STORE_PASSWORD_FILE"].startswith("/run/secrets/postgres/"), name
        assert not re.search(r"://[^@/]*:[^@/]*@", " ".join(c["args"])), name
    serve = deployments["carewatch-serve"]["spec"]["template"]["spec"]["containers"][0]
    assert "--metrics-port=9466" in serve["args"]
    assert by_kind("Service")["carewatch-serve"]["spec"]["ports"][0]["port"] == 8080
    prom = yaml.safe_load(by_kind("ConfigMap")["carewatch-prometheus"]["data"]["prometheus.yml"])
    jobs = {j["job_name"] for j in prom["scrape_configs"]}
    compose_prom = yaml.safe_load((COMPOSE.parent / "prometheus.yml").read_text())
    assert "carewatch-serve" in jobs
    assert "carewatch-serve" in {j["job_name"] for j in compose_prom["scrape_configs"]}
