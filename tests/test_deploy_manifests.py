"""The Kubernetes manifests (deploy/k8s) parse, run the real entry points, and configure a production
app that starts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from backend import queues
from backend.config import Settings

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"


def documents() -> list[dict]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def of_kind(kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in documents() if d["kind"] == kind}


def containers(deployment: dict) -> list[dict]:
    return deployment["spec"]["template"]["spec"]["containers"]


def known_variables() -> set[str]:
    source = (ROOT / "backend" / "config.py").read_text() + (ROOT / "deploy" / "gunicorn.conf.py").read_text()
    names = set(re.findall(r'(?:env\.get|_int\(env,|_float\(env,|_limit\(env,|os\.environ\.get)\(?\s*["\']([A-Z_]+)["\']', source))
    names |= {name.upper() for name in re.findall(r'"(rate_limit_[a-z_]+)"', source)}
    return names | {"GOOGLE_APPLICATION_CREDENTIALS"}


def test_every_manifest_parses_and_is_in_the_kustomization():
    docs = documents()
    assert docs and all({"apiVersion", "kind", "metadata"} <= d.keys() and d["metadata"].get("name") for d in docs
                        if d["kind"] != "Kustomization")
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


def test_deployments_select_their_own_pods_and_run_as_non_root_with_memory_limits():
    for name, deployment in of_kind("Deployment").items():
        spec = deployment["spec"]
        assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items(), name
        assert spec["template"]["spec"]["securityContext"]["runAsNonRoot"] is True, name
        for container in containers(deployment):
            assert container["resources"]["limits"]["memory"] and container["resources"]["requests"]["cpu"], name


def test_the_roles_run_the_real_entry_points():
    deployments = of_kind("Deployment")
    dockerfile_cmd = re.search(r'^CMD (\[.*\])$', (ROOT / "deploy" / "Dockerfile").read_text(), re.M).group(1)
    assert containers(deployments["safetravel-api"])[0]["command"] == yaml.safe_load(dockerfile_cmd)
    served = []
    for name, deployment in deployments.items():
        if name.startswith("safetravel-worker-"):
            command = containers(deployment)[0]["command"]
            assert command[:3] == ["python", "-m", "worker"]
            served += command[3:]
    assert sorted(served) == sorted(queues.ALL)  # every queue has a pool, none has two
    scheduler = deployments["safetravel-scheduler"]
    assert containers(scheduler)[0]["command"] == ["python", "-m", "worker.scheduler"]
    assert scheduler["spec"]["replicas"] == 1 and scheduler["spec"]["strategy"]["type"] == "Recreate"
    assert of_kind("Job")["safetravel-migrate"]["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "safetravel", "migrate"]
    images = {c["image"] for d in [*deployments.values(), *of_kind("Job").values()] for c in containers(d)}
    assert len(images) == 1  # one image, four roles


def test_every_process_that_builds_the_app_has_the_firebase_key_where_the_configuration_says():
    """The API, the workers and the migrations (the CLI) build the app, which reads the key at start-up;
    the scheduler only enqueues."""
    key_path = Path(of_kind("ConfigMap")["safetravel-config"]["data"]["GOOGLE_APPLICATION_CREDENTIALS"])
    pods = {**of_kind("Deployment"), **of_kind("Job")}
    for name, pod in pods.items():
        if name == "safetravel-scheduler":
            continue
        volumes = {v["name"]: v for v in pod["spec"]["template"]["spec"].get("volumes", [])}
        mounts = {m["mountPath"]: m["name"] for m in containers(pod)[0].get("volumeMounts", [])}
        assert str(key_path.parent) in mounts, f"{name} does not mount {key_path.parent}"
        assert volumes[mounts[str(key_path.parent)]]["secret"]["secretName"] == "firebase-service-account", name


def test_the_api_probes_health_and_readiness():
    api = containers(of_kind("Deployment")["safetravel-api"])[0]
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_the_configuration_is_a_production_one_the_app_accepts():
    config = of_kind("ConfigMap")["safetravel-config"]["data"]
    secret = of_kind("Secret")["safetravel-env"]["stringData"]
    env = {**config, **secret}
    assert set(env) <= known_variables(), set(env) - known_variables()
    assert "FIREBASE_AUTH_EMULATOR_HOST" not in env
    settings = Settings.from_env(env)
    assert settings.is_production and settings.firebase_auth_emulator_host is None
    assert settings.log_format == "json"


@pytest.mark.parametrize("name", ["safetravel-api", "safetravel-worker-batch"])
def test_the_api_and_the_export_workers_share_the_exports_volume(name):
    deployment = of_kind("Deployment")[name]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["exports"]["persistentVolumeClaim"]["claimName"] == "safetravel-exports"
    mounts = {m["name"]: m["mountPath"] for m in containers(deployment)[0]["volumeMounts"]}
    assert mounts["exports"] == of_kind("ConfigMap")["safetravel-config"]["data"]["EXPORT_DIR"]
