"""deploy/k8s/ checked offline: Kubernetes schemas (kubernetes-validate), and agreement with docker-compose.yml,
the Dockerfile, the settings and the metrics the autoscaler really exports. Nothing here talks to a cluster."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from db.database import Database
from tensorq.core.settings import Settings
from worker.autoscale.metrics import AutoscaleMetrics

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30"


def _documents() -> list[tuple[str, dict]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path.name, doc))
    return docs


def _kind(kind: str, name: str | None = None) -> dict:
    found = [d for _f, d in _documents() if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _compose_default(value: str) -> str:
    """``${NAME:-default}`` -> ``default``."""
    match = re.fullmatch(r"\$\{[A-Z_]+:-([^}]*)\}", str(value))
    assert match, value
    return match.group(1)


BUILTIN = [(f, d) for f, d in _documents() if d["kind"] not in ("ScaledObject", "Kustomization")]


@pytest.mark.parametrize(("filename", "doc"), BUILTIN, ids=[f"{f}:{d['kind']}" for f, d in BUILTIN])
def test_manifests_are_valid_kubernetes_objects(filename: str, doc: dict) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    listed = set(_kind("Kustomization")["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert listed == on_disk


SCALED_OBJECT_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {"type": "object", "required": ["name"]},
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "pollingInterval": {"type": "integer"},
                "cooldownPeriod": {"type": "integer"},
                "advanced": {"type": "object"},
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "properties": {
                            "type": {"const": "prometheus"},
                            "metadata": {
                                "type": "object",
                                "required": ["serverAddress", "query", "threshold"],
                                "additionalProperties": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
    },
}


def test_keda_scales_the_cpu_workers_like_the_compose_autoscaler() -> None:
    scaled = _kind("ScaledObject")
    jsonschema.validate(scaled, SCALED_OBJECT_SCHEMA)
    worker = _kind("Deployment", scaled["spec"]["scaleTargetRef"]["name"])
    assert worker["metadata"]["labels"]["app.kubernetes.io/component"] == "worker-cpu"
    env = _compose()["services"]["autoscaler"]["environment"]
    spec = scaled["spec"]
    assert spec["minReplicaCount"] == int(_compose_default(env["TENSORQ_AUTOSCALE_MIN_WORKERS"]))
    assert spec["maxReplicaCount"] == int(_compose_default(env["TENSORQ_AUTOSCALE_MAX_WORKERS"]))
    assert spec["cooldownPeriod"] == int(_compose_default(env["TENSORQ_AUTOSCALE_COOLDOWN_S"]))
    (trigger,) = spec["triggers"]
    assert trigger["metadata"]["threshold"] == _compose_default(env["TENSORQ_AUTOSCALE_JOBS_PER_WORKER"])
    # The query reads metrics the autoscaler's process really exports, on the queues the workers serve.
    exported = {m.name for m in AutoscaleMetrics("worker-cpu", ("train",)).registry.collect()}
    used = set(re.findall(r"(tensorq_[a-z_]+)\{", trigger["metadata"]["query"]))
    assert used, (used, exported)
    assert used <= exported, (used, exported)
    command = worker["spec"]["template"]["spec"]["containers"][0]["command"]
    served = set(command[command.index("--queues") + 1].split(","))
    for selector in re.findall(r'queue=~"([^"]+)"', trigger["metadata"]["query"]):
        assert set(selector.split("|")) == served


def test_queue_metrics_pod_serves_what_keda_reads() -> None:
    pod = _kind("Deployment", "tensorq-queue-metrics")["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["command"] == ["tensorq", "autoscale", "--metrics-only"]
    port = int(_kind("ConfigMap")["data"]["TENSORQ_AUTOSCALE_METRICS_PORT"])
    assert container["ports"][0]["containerPort"] == port == Settings().autoscale_metrics_port
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)


def test_workloads_match_the_compose_services_and_images() -> None:
    services = _compose()["services"]
    worker = _kind("Deployment", "tensorq-worker-cpu")["spec"]["template"]["spec"]
    assert worker["containers"][0]["command"] == services["worker-cpu"]["command"]
    # The pod's grace period covers its preStop drain and then compose's grace for a hand-back after SIGTERM.
    drain = worker["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert worker["terminationGracePeriodSeconds"] == 60 + int(drain[drain.index("--wait-s") + 1])
    assert services["worker-cpu"]["stop_grace_period"] == "1m"
    assert _kind("Job")["spec"]["template"]["spec"]["containers"][0]["command"] == services["migrate"]["command"]
    uid = int(re.search(r"useradd .*--uid (\d+)", (ROOT / "Dockerfile").read_text()).group(1))
    for _f, doc in _documents():
        if doc["kind"] in ("Deployment", "Job"):
            pod = doc["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert pod["securityContext"]["runAsUser"] == uid


def test_api_is_ready_on_readyz_and_shares_a_read_write_many_artifact_volume() -> None:
    api = _kind("Deployment", "tensorq-api")["spec"]["template"]["spec"]
    assert api["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert _kind("PersistentVolumeClaim")["spec"]["accessModes"] == ["ReadWriteMany"]
    artifact_dir = _kind("ConfigMap")["data"]["TENSORQ_ARTIFACT_DIR"]
    assert artifact_dir == _compose()["x-tensorq-env"]["TENSORQ_ARTIFACT_DIR"]
    for name in ("tensorq-api", "tensorq-worker-cpu"):
        pod = _kind("Deployment", name)["spec"]["template"]["spec"]
        mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]}
        assert mounts == {"artifacts": artifact_dir}
        assert claims == {"artifacts": "tensorq-artifacts"}


def test_every_setting_named_is_a_real_setting_and_compose_settings_are_all_there() -> None:
    fields = {f"TENSORQ_{name.upper()}" for name in Settings.model_fields}
    secret = yaml.safe_load((K8S / "secret.example.yaml").read_text())["stringData"]
    config = _kind("ConfigMap")["data"]
    assert set(config) | set(secret) <= fields
    assert set(_compose()["x-tensorq-env"]) <= set(config) | set(secret)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl renders the kustomize overlay")
def test_the_s3_overlay_drops_the_read_write_many_volume_and_names_the_bucket() -> None:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / "deploy" / "k8s-s3")], capture_output=True, text=True, check=True
    ).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    for doc in docs:
        if doc["kind"] != "ScaledObject":
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    assert "PersistentVolumeClaim" not in {d["kind"] for d in docs}
    assert "claimName" not in rendered
    [config] = [d for d in docs if d["kind"] == "ConfigMap"]
    assert config["data"]["TENSORQ_ARTIFACT_URL"].startswith("s3://")
    assert [k for k in config["data"] if k.removeprefix("TENSORQ_").lower() not in Settings.model_fields] == []
    for doc in docs:
        if doc["kind"] == "Deployment":
            for volume in doc["spec"]["template"]["spec"].get("volumes", []):
                assert "persistentVolumeClaim" not in volume


def test_a_worker_pod_drains_before_it_stops_and_keda_can_activate_from_zero() -> None:
    """preStop runs `tensorq drain` (a real command of the CLI) within the grace period; the trigger has an
    activation threshold, so minReplicaCount 0 scales from zero at the first queued job."""
    from click.testing import CliRunner

    from tensorq.cli import main

    pod = _kind("Deployment", "tensorq-worker-cpu")["spec"]["template"]["spec"]
    command = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert command[:2] == ["tensorq", "drain"]
    wait_s = float(command[command.index("--wait-s") + 1])
    assert pod["terminationGracePeriodSeconds"] >= wait_s + 30  # room for the hand-back after a drain that ran out
    assert CliRunner().invoke(main, ["drain", "--help"]).exit_code == 0
    (trigger,) = _kind("ScaledObject")["spec"]["triggers"]
    assert trigger["metadata"]["activationThreshold"] == "0"


KEDA_POSTGRESQL = ROOT / "deploy" / "k8s-keda-postgresql"
POSTGRESQL_TRIGGER = {
    "type": "object",
    "required": ["type", "metadata", "authenticationRef"],
    "additionalProperties": False,
    "properties": {
        "type": {"const": "postgresql"},
        "authenticationRef": {
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {"name": {"type": "string"}},
        },
        "metadata": {
            "type": "object",
            "required": ["query", "targetQueryValue", "activationTargetQueryValue"],
            "additionalProperties": False,
            "properties": {
                "query": {"type": "string"},
                "targetQueryValue": {"type": "string", "pattern": r"^[0-9.]+$"},
                "activationTargetQueryValue": {"type": "string", "pattern": r"^[0-9.]+$"},
            },
        },
    },
}
TRIGGER_AUTHENTICATION_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["secretTargetRef"],
            "properties": {
                "secretTargetRef": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["parameter", "name", "key"],
                        "additionalProperties": False,
                        "properties": {
                            "parameter": {"enum": ["connection", "password"]},
                            "name": {"type": "string"},
                            "key": {"type": "string"},
                        },
                    },
                }
            },
        },
    },
}


def _postgresql_trigger() -> dict:
    """The trigger the postgresql overlay puts in place of the Prometheus one (read from its patch)."""
    patch = yaml.safe_load((KEDA_POSTGRESQL / "scaledobject-postgresql.yaml").read_text())
    (trigger,) = patch["spec"]["triggers"]
    return trigger


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl renders the kustomize overlay")
def test_the_postgresql_overlay_scales_like_the_prometheus_trigger_without_prometheus() -> None:
    """deploy/k8s-keda-postgresql: the same ScaledObject (bounds, cooldown, activation from zero) with KEDA's
    postgresql scaler on the backlog query, authenticated by a TriggerAuthentication from a Secret of its own."""
    import copy

    rendered = subprocess.run(
        ["kubectl", "kustomize", str(KEDA_POSTGRESQL)], capture_output=True, text=True, check=True
    ).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    for doc in docs:
        if doc["kind"] not in ("ScaledObject", "TriggerAuthentication"):
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    assert "prometheus" not in rendered.split("kind: ScaledObject")[1]
    [scaled] = [d for d in docs if d["kind"] == "ScaledObject"]
    schema = copy.deepcopy(SCALED_OBJECT_SCHEMA)
    schema["properties"]["spec"]["properties"]["triggers"]["items"] = POSTGRESQL_TRIGGER  # type: ignore[index]
    jsonschema.validate(scaled, schema)
    base = _kind("ScaledObject")
    assert {k: v for k, v in scaled["spec"].items() if k != "triggers"} == {
        k: v for k, v in base["spec"].items() if k != "triggers"
    }
    (trigger,) = scaled["spec"]["triggers"]
    (prometheus,) = base["spec"]["triggers"]
    assert trigger == _postgresql_trigger()
    assert trigger["metadata"]["targetQueryValue"] == prometheus["metadata"]["threshold"]
    assert trigger["metadata"]["activationTargetQueryValue"] == prometheus["metadata"]["activationThreshold"] == "0"
    [auth] = [d for d in docs if d["kind"] == "TriggerAuthentication"]
    jsonschema.validate(auth, TRIGGER_AUTHENTICATION_SCHEMA)
    assert auth["metadata"]["name"] == trigger["authenticationRef"]["name"]
    [ref] = auth["spec"]["secretTargetRef"]
    secret = yaml.safe_load((KEDA_POSTGRESQL / "secret.example.yaml").read_text())
    assert (ref["name"], ref["key"]) == (secret["metadata"]["name"], "connection")
    assert secret["stringData"]["connection"].startswith("postgresql://")  # libpq's form, not SQLAlchemy's
    assert "Secret" not in {d["kind"] for d in docs}  # the example is never applied with the overlay


def test_the_postgresql_trigger_counts_the_job_types_of_the_queues_the_workers_serve() -> None:
    from tensorq.core.routing import types_of

    worker = _kind("Deployment", "tensorq-worker-cpu")["spec"]["template"]["spec"]["containers"][0]["command"]
    served = worker[worker.index("--queues") + 1].split(",")
    query = _postgresql_trigger()["metadata"]["query"]
    [listed] = re.findall(r"type IN \(([^)]*)\)", query)
    assert sorted(re.findall(r"'([a-z_]+)'", listed)) == sorted(t for q in served for t in types_of(q))


def test_the_postgresql_trigger_query_reads_what_the_autoscaler_reads(db: Database) -> None:
    """On the real database (SQLite and Postgres): the overlay's query returns the backlog the compose autoscaler
    scales on (queued + running jobs of the served queues; finished jobs not counted)."""
    from sqlalchemy import text

    from db.backlog import backlog_by_type
    from db.jobs import NewJob
    from worker.autoscale.loop import queue_loads
    from worker.autoscale.policy import demand

    tenant = db.keys.ensure_tenant("acme")
    ids = {
        kind: [db.jobs.submit(NewJob(tenant, kind, {"n": i})).job.id for i in range(n)]
        for kind, n in (("train", 3), ("predict", 2), ("import", 1), ("explain", 1))
    }
    assert db.jobs.claim(ids["train"][0], "w:1") is not None
    done = db.jobs.claim(ids["predict"][0], "w:1")
    assert done is not None
    db.jobs.finish(ids["predict"][0], done.lease_token, {})
    query = _postgresql_trigger()["metadata"]["query"]
    with db.factory() as session:
        value = session.execute(text(query)).scalar_one()
    expected = demand(queue_loads(backlog_by_type(db.factory)), ("train", "predict", "explain"))
    assert int(value) == expected == 6
