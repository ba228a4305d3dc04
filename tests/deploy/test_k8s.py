"""Kubernetes manifests, validated offline: a hand-written schema of what matters here, the official
JSON schemas when `kubernetes-validate` is installed, and `kubectl kustomize` when kubectl is."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from app.config import Settings
from tests.deploy.tools import K8S, find_tool, load_yaml_documents, parse_dockerfile

KNOWN_KINDS = {
    ("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "Service"), ("apps/v1", "Deployment"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"), ("policy/v1", "PodDisruptionBudget"), ("networking.k8s.io/v1", "Ingress"),
    ("kustomize.config.k8s.io/v1beta1", "Kustomization"),
}
MANIFESTS = sorted(K8S.rglob("*.yaml"))


def resources(directory: Path = K8S / "base") -> dict[str, dict]:
    """`kind` -> the one resource of that kind in the base (kustomization excluded)."""
    found: dict[str, dict] = {}
    for path in sorted(directory.glob("*.yaml")):
        for doc in load_yaml_documents(path):
            if doc["kind"] != "Kustomization":
                assert doc["kind"] not in found, f"two {doc['kind']} in {directory}"
                found[doc["kind"]] = doc
    return found


@pytest.fixture(scope="module")
def base() -> dict[str, dict]:
    return resources()


def test_manifests_exist() -> None:
    names = {p.relative_to(K8S).as_posix() for p in MANIFESTS}
    assert {"base/deployment.yaml", "base/service.yaml", "base/hpa.yaml", "base/configmap.yaml", "secret.example.yaml", "gpu/kustomization.yaml"} <= names


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.relative_to(K8S).as_posix())
def test_every_document_has_a_known_kind_and_a_name(path: Path) -> None:
    for doc in load_yaml_documents(path):
        assert (doc.get("apiVersion"), doc.get("kind")) in KNOWN_KINDS, f"{path.name}: {doc.get('apiVersion')} {doc.get('kind')}"
        if doc["kind"] != "Kustomization":
            assert isinstance(doc["metadata"]["name"], str) and doc["metadata"]["name"]


def test_kustomizations_list_existing_files() -> None:
    for path in K8S.rglob("kustomization.yaml"):
        (doc,) = load_yaml_documents(path)
        for entry in doc.get("resources", []) + [p["path"] for p in doc.get("patches", []) if "path" in p]:
            assert (path.parent / entry).exists(), f"{path}: {entry} does not exist"


def test_deployment_container(base: dict[str, dict]) -> None:
    pod = base["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"]
    assert {"name": "http", "containerPort": 8000, "protocol": "TCP"} in container["ports"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind]), f"resources.{kind}"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    healthcheck = parse_dockerfile().stage("runtime").last("HEALTHCHECK").arguments  # type: ignore[union-attr]
    readiness = container["readinessProbe"]["exec"]["command"]
    assert readiness[1] == "/opt/asr/healthcheck.py" and readiness[1] in healthcheck, "readiness = the image's /readyz check (sends the API key)"
    assert pod["securityContext"]["runAsNonRoot"] is True and container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["terminationGracePeriodSeconds"] > 30 + 5, "uvicorn drains for 30 s after the preStop pause"
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/tmp" in mounts, "uploads spool to /tmp on a read-only root filesystem"


def test_configmap_holds_only_real_settings(base: dict[str, dict]) -> None:
    data = base["ConfigMap"]["data"]
    assert all(isinstance(v, str) for v in data.values()), "ConfigMap values must be strings"
    unknown = [k for k in data if not k.startswith("ASR_") or k[4:].lower() not in Settings.model_fields]
    assert not unknown, f"not ASR_* settings of app.config.Settings: {unknown}"
    refs = base["Deployment"]["spec"]["template"]["spec"]["containers"][0]["envFrom"]
    assert {"configMapRef": {"name": base["ConfigMap"]["metadata"]["name"]}} in refs


def test_api_key_secret_is_optional_and_matches_the_example(base: dict[str, dict]) -> None:
    (example,) = load_yaml_documents(K8S / "secret.example.yaml")
    pod = base["Deployment"]["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if "secret" in v)
    assert volume["secret"] == {"secretName": example["metadata"]["name"], "optional": True}
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    (key,) = example["stringData"]
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == volume["name"])
    assert env["ASR_API_KEYS_FILE"] == f"{mount['mountPath']}/{key}"


def test_selectors_match_the_pod_labels(base: dict[str, dict]) -> None:
    deployment = base["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    for selector in (deployment["spec"]["selector"]["matchLabels"], base["Service"]["spec"]["selector"],
                     base["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"]):
        assert selector.items() <= labels.items(), selector


def test_service_routes_to_the_named_port_with_client_affinity(base: dict[str, dict]) -> None:
    service = base["Service"]["spec"]
    container_ports = {p["name"] for p in base["Deployment"]["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert {p["targetPort"] for p in service["ports"]} <= container_ports
    assert service["sessionAffinity"] == "ClientIP"


def test_hpa_targets_the_deployment(base: dict[str, dict]) -> None:
    spec = base["HorizontalPodAutoscaler"]["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": base["Deployment"]["metadata"]["name"]}
    assert 1 <= spec["minReplicas"] <= spec["maxReplicas"]
    assert "requests" in base["Deployment"]["spec"]["template"]["spec"]["containers"][0]["resources"], "CPU utilisation needs requests"


def test_ingress_points_at_the_service_with_websocket_timeouts(base: dict[str, dict]) -> None:
    ingress = base["Ingress"]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == base["Service"]["metadata"]["name"]
    assert backend["port"]["name"] in {p["name"] for p in base["Service"]["spec"]["ports"]}
    annotations = ingress["metadata"]["annotations"]
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 600
    assert annotations["nginx.ingress.kubernetes.io/affinity"] == "cookie"


def test_gpu_overlay_requests_a_gpu() -> None:
    (patch,) = load_yaml_documents(K8S / "gpu" / "deployment-gpu.yaml")
    (container,) = patch["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1


def validate_with_official_schemas(documents: list[dict], tmp_path: Path) -> None:
    """Strict validation (no unknown fields) against the Kubernetes JSON schemas: the `kubernetes_validate`
    module when importable, else its CLI (for instance from a separate tools environment on PATH)."""
    documents = [d for d in documents if d["kind"] != "Kustomization"]
    try:
        import kubernetes_validate
    except ImportError:
        cli = find_tool("kubernetes-validate")
        if cli is None:
            pytest.skip("kubernetes-validate not installed (pip install kubernetes-validate)")
        yaml = pytest.importorskip("yaml")
        path = tmp_path / "resources.yaml"
        path.write_text(yaml.safe_dump_all(documents))
        result = subprocess.run([cli, "--strict", "--quiet", str(path)], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        return
    for doc in documents:
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def patch_files() -> set[Path]:
    """Strategic-merge patches named by the kustomizations: partial resources, checked after `kustomize`."""
    found = set()
    for path in K8S.rglob("kustomization.yaml"):
        (doc,) = load_yaml_documents(path)
        found |= {(path.parent / p["path"]).resolve() for p in doc.get("patches", []) if "path" in p}
    return found


def test_official_schemas(tmp_path: Path) -> None:
    patches = patch_files()
    assert patches, "the GPU overlay's patch"
    documents = [doc for path in MANIFESTS if path.resolve() not in patches for doc in load_yaml_documents(path)]
    validate_with_official_schemas(documents, tmp_path)


@pytest.mark.parametrize("overlay", ["base", "gpu"])
def test_kustomize_builds(overlay: str, tmp_path: Path) -> None:
    kubectl = find_tool("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed")
    yaml = pytest.importorskip("yaml")
    result = subprocess.run([kubectl, "kustomize", str(K8S / overlay)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert sorted(d["kind"] for d in docs) == ["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Ingress", "PodDisruptionBudget", "Service"]
    validate_with_official_schemas(docs, tmp_path)
