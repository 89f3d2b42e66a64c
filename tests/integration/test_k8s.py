"""deploy/k8s checked without a cluster: both kustomizations rendered by `kubectl kustomize`, every object validated
against the Kubernetes schemas (kubernetes-validate, strict) and KEDA's (the cloudcoil models generated from KEDA's
CRDs), and what the manifests say checked against the code — each stage's ScaledObject watches its input stream
through its own consumer group, probes hit endpoints the services serve on the port they listen on, every
NEWSFLOW_* name is a setting, every secret reference is a key deploy/k8s/secret.sh writes — then the Secret's Redis
ACL loaded into a test-owned redis-server, and every service run with the environment its pod gets."""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import redis
import typer
import yaml

from shared.settings import Settings
from shared.streams import SERVICES, group_of, names
from tests.conftest import ROOT, SEED, ServiceProcess, wait_for
from tests.servers import RedisServer

pytestmark = pytest.mark.integration

K8S = ROOT / "deploy" / "k8s"
KUSTOMIZATIONS = {"all-in-one": K8S, "base": K8S / "base"}
KUBERNETES_VERSION = "1.30"  # the oldest release the manifests promise (sidecar-free, restricted pod security)
SECRET = "newsflow-secrets"


def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        pytest.skip("kubectl not found (it renders the kustomizations: apt-get install kubectl)")
    return found


@cache
def kustomize(folder: Path) -> tuple[dict[str, Any], ...]:
    """`kubectl kustomize FOLDER`, run once a session for each folder: the objects `kubectl apply -k` would send."""
    run = subprocess.run([kubectl(), "kustomize", str(folder)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return tuple(doc for doc in yaml.safe_load_all(run.stdout) if doc)


def render(folder: Path) -> tuple[dict[str, Any], ...]:
    """The objects of `folder`'s kustomization, a copy for each test: one that changes them leaves the next alone."""
    return copy.deepcopy(kustomize(folder))


def generated_env() -> dict[str, str]:
    """What `sh deploy/gen-env.sh > .env` produces (every secret of .env.example filled)."""
    run = subprocess.run(["sh", str(ROOT / "deploy" / "gen-env.sh")], capture_output=True, text=True, check=True)
    return dict(line.split("=", 1) for line in run.stdout.splitlines() if line and not line.startswith("#"))


def secret_document(env: dict[str, str], tmp_path: Path, **overrides: str) -> dict[str, Any]:
    """The Secret `sh deploy/k8s/secret.sh .env` prints."""
    env_file = tmp_path / "k8s.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in {**env, **overrides}.items()))
    run = subprocess.run(
        ["sh", str(K8S / "secret.sh"), str(env_file)],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"]},
    )
    assert run.returncode == 0, run.stderr
    return dict(yaml.safe_load(run.stdout))


def by_kind(objects: tuple[dict[str, Any], ...], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def config_map(objects: tuple[dict[str, Any], ...]) -> dict[str, str]:
    [config] = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("newsflow-config")]
    return dict(config["data"])


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    [only] = deployment["spec"]["template"]["spec"]["containers"]
    return dict(only)


def keda_errors(document: dict[str, Any]) -> list[str]:
    """Where a KEDA object and what KEDA's schema makes of it differ (unknown fields vanish, wrong types fail)."""
    from cloudcoil.models.keda import v1alpha1
    from pydantic import ValidationError

    model: Any = {"ScaledObject": v1alpha1.ScaledObject, "TriggerAuthentication": v1alpha1.TriggerAuthentication}[
        document["kind"]
    ]
    try:
        parsed = model.model_validate(document)
    except ValidationError as exc:
        return [str(exc)]
    again = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")

    def differences(a: Any, b: Any, path: str) -> Iterator[str]:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in a.keys() | b.keys():
                if key not in b:
                    yield f"{path}.{key}: not in KEDA's schema"
                elif key not in a:
                    continue  # a default the model filled in
                else:
                    yield from differences(a[key], b[key], f"{path}.{key}")
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for n, (x, y) in enumerate(zip(a, b, strict=True)):
                yield from differences(x, y, f"{path}[{n}]")
        elif a != b:
            yield f"{path}: {a!r} read as {b!r}"

    return list(differences(document, again, document["kind"]))


def validation_errors(document: dict[str, Any]) -> list[str]:
    if document["apiVersion"].startswith("keda.sh/"):
        return keda_errors(document)
    try:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{document['kind']}/{document['metadata']['name']}: {'.'.join(map(str, exc.path))}: {exc.message}"]
    return []


@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_kustomizations_render_and_every_object_is_valid(name: str, tmp_path: Path) -> None:
    objects = render(KUSTOMIZATIONS[name])
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "ScaledObject", "TriggerAuthentication", "ConfigMap", "Service"} <= kinds
    if name == "all-in-one":
        assert {"Namespace", "StatefulSet"} <= kinds
    errors = [error for document in objects for error in validation_errors(document)]
    errors += validation_errors(secret_document(generated_env(), tmp_path))
    assert not errors, errors
    assert all(o["metadata"].get("namespace") == "newsflow" for o in objects if o["kind"] != "Namespace")


def test_the_validators_catch_mistakes() -> None:
    objects = render(K8S / "base")
    deployment = json.loads(json.dumps(by_kind(objects, "Deployment")["enrich"]))
    container(deployment)  # one container
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    assert validation_errors(deployment)
    scaled = json.loads(json.dumps(by_kind(objects, "ScaledObject")["enrich"]))
    scaled["spec"]["triggers"][0]["metadata"]["lagCount"] = 64  # KEDA's metadata values are strings
    assert keda_errors(scaled)
    scaled = json.loads(json.dumps(by_kind(objects, "ScaledObject")["enrich"]))
    scaled["spec"]["maxReplicas"] = 3  # the field is maxReplicaCount
    assert keda_errors(scaled)


def test_every_stage_scales_on_its_input_stream_through_its_own_group() -> None:
    objects = render(K8S)
    deployments = by_kind(objects, "Deployment")
    scaled = by_kind(objects, "ScaledObject")
    [auth] = by_kind(objects, "TriggerAuthentication").values()
    streams = names(Settings(key_prefix=config_map(objects)["NEWSFLOW_KEY_PREFIX"]))
    assert set(scaled) == set(SERVICES), "one ScaledObject per stage, none for the API"
    for stage in SERVICES:
        target = scaled[stage]["spec"]["scaleTargetRef"]
        assert target.get("kind", "Deployment") == "Deployment" and target["name"] == stage
        assert container(deployments[stage])["args"] == ["serve", stage]
        # KEDA owns the count: a `replicas:` in the Deployment would fight it on every apply.
        assert "replicas" not in deployments[stage]["spec"], stage
        assert scaled[stage]["spec"]["minReplicaCount"] >= 1  # fetch's poller, ingest's HTTP endpoint
        triggers = scaled[stage]["spec"]["triggers"]
        assert {t["type"] for t in triggers} == {"redis-streams"}
        assert {next(k for k in ("lagCount", "pendingEntriesCount") if k in t["metadata"]) for t in triggers} == {
            "lagCount",
            "pendingEntriesCount",
        }
        for trigger in triggers:
            assert trigger["metadata"]["stream"] == streams.input_of(stage), stage
            assert trigger["metadata"]["consumerGroup"] == group_of(stage), stage
            assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    assert deployments["api"]["spec"]["replicas"] >= 1


def test_the_stream_names_follow_the_key_prefix(tmp_path: Path) -> None:
    copy = tmp_path / "base"
    shutil.copytree(K8S / "base", copy)
    kustomization = copy / "kustomization.yaml"
    kustomization.write_text(
        kustomization.read_text().replace("NEWSFLOW_KEY_PREFIX=newsflow", "NEWSFLOW_KEY_PREFIX=nf7")
    )
    objects = render(copy)
    for stage, scaled in by_kind(objects, "ScaledObject").items():
        for trigger in scaled["spec"]["triggers"]:
            assert trigger["metadata"]["stream"] == names(Settings(key_prefix="nf7")).input_of(stage)


def api_routes() -> set[str]:
    """The read API's routes, read from its app in a process of its own (it reads settings at import)."""
    env = {
        **os.environ,
        "NEWSFLOW_READ_TOKEN": "r" * 32,
        "NEWSFLOW_OPERATOR_TOKEN": "o" * 32,
        "NEWSFLOW_STORAGE_URL": "sqlite:///:memory:",
        "NEWSFLOW_LOG_LEVEL": "ERROR",
    }
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            'import json, services.api.main as m; print(json.dumps([getattr(r, "path", "") for r in m.app.routes]))',
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    return set(json.loads(run.stdout.splitlines()[-1]))


def test_probes_settings_secrets_and_budgets_match_the_code(tmp_path: Path) -> None:
    from newsflow.cli import app
    from shared.observability.health import build_app, http_port
    from tools.bench.pipeline import TARGET_RSS_MB

    objects = render(K8S)
    config = config_map(objects)
    settings_names = {f"NEWSFLOW_{name.upper()}" for name in Settings.model_fields}
    assert set(config) <= settings_names, set(config) - settings_names
    secret_keys = set(secret_document(generated_env(), tmp_path)["stringData"])
    cli = typer.main.get_command(app)
    port = http_port(Settings(http_port=int(config["NEWSFLOW_HTTP_PORT"])), "api")
    routes_of_api = api_routes()
    for name, deployment in by_kind(objects, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        spec = container(deployment)
        command, *args = spec["args"]
        cli.commands[command].make_context(command, list(args))  # type: ignore[attr-defined]
        assert args == [name]
        env = {e["name"]: e for e in spec.get("env", [])}
        assert set(env) <= settings_names, (name, set(env) - settings_names)
        for entry in env.values():
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] == SECRET and ref["key"] in secret_keys, (name, ref)
        assert env["NEWSFLOW_REDIS_URL"]["valueFrom"]["secretKeyRef"]["key"] == f"redis-url-{name}"
        # Probes: the endpoints the service serves, on the port it listens on.
        [http] = [p for p in spec["ports"] if p["name"] == "http"]
        assert http["containerPort"] == port
        stage_app = build_app(name, "s", "g", Settings(), redis.asyncio.Redis())
        routes = routes_of_api if name == "api" else {getattr(r, "path", "") for r in stage_app.routes}
        for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            get = spec[probe]["httpGet"]
            assert get["path"] == path and get["path"] in routes and get["port"] == "http", (name, probe)
        # Non-root, nothing to escalate to, a read-only root file system.
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
        assert pod["automountServiceAccountToken"] is False
        assert spec["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
        # The memory budget make bench holds each service to is what a replica asks for.
        budget = TARGET_RSS_MB.get(name, TARGET_RSS_MB["default"])
        assert spec["resources"]["requests"]["memory"] == f"{budget:.0f}Mi", name
        limit = int(spec["resources"]["limits"]["memory"].removesuffix("Mi"))
        assert budget < limit <= 1.3 * budget, name
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^RUN useradd .*--uid 10001 ", dockerfile, re.M), "the image's user is the pods' runAsUser"
    for stateful in by_kind(objects, "StatefulSet").values():
        pod = stateful["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0


def test_the_postgres_init_files_are_copies_of_deploy_postgres() -> None:
    for name in ("init-api-role.sh", "api-role.sql"):
        assert (K8S / "stores" / "postgres" / name).read_bytes() == (ROOT / "deploy" / "postgres" / name).read_bytes()
    [init] = [o for o in render(K8S) if o["metadata"]["name"].startswith("newsflow-postgres-init")]
    assert init["data"]["api-role.sql"] == (ROOT / "deploy" / "postgres" / "api-role.sql").read_text()


def test_secret_script_refuses_a_missing_or_unsafe_secret(tmp_path: Path) -> None:
    env = generated_env()
    for overrides in ({"REDIS_KEDA_PASSWORD": ""}, {"POSTGRES_PASSWORD": "a@b"}):
        env_file = tmp_path / "bad.env"
        env_file.write_text("".join(f"{k}={v}\n" for k, v in {**env, **overrides}.items()))
        run = subprocess.run(
            ["sh", str(K8S / "secret.sh"), str(env_file)],
            capture_output=True,
            text=True,
            env={"PATH": os.environ["PATH"]},
        )
        assert run.returncode == 64 and run.stdout == "", run
        assert run.stderr.count("\n") == 1 and next(iter(overrides)) in run.stderr


class SecretRedis(RedisServer):
    """A test-owned redis-server with the ACL file the Secret carries (what the redis StatefulSet mounts)."""

    def __init__(self, workdir: Path, acl_text: str, operator_password: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        acl = workdir / "users.acl"
        acl.write_text(acl_text)
        super().__init__(workdir, extra_args=["--aclfile", str(acl)])
        self.login = f"operator:{operator_password}"
        self.start()

    def local(self, url: str) -> str:
        """A URL of the Secret, pointed at this server instead of the in-cluster `redis` Service."""
        return url.replace("@redis:6379/", f"@127.0.0.1:{self.port}/")


@pytest.fixture
def k8s_secret(tmp_path: Path, key_prefix: str) -> dict[str, str]:
    document = secret_document(generated_env(), tmp_path, NEWSFLOW_KEY_PREFIX=key_prefix)
    return dict(document["stringData"])


@pytest.fixture
def secret_redis(tmp_path: Path, k8s_secret: dict[str, str]) -> Iterator[SecretRedis]:
    server = SecretRedis(tmp_path / "redis", k8s_secret["users.acl"], k8s_secret["redis-operator-password"])
    yield server
    server.stop(kill=True)


def test_keda_may_read_lag_and_pending_of_the_pipeline_streams_and_nothing_else(
    secret_redis: SecretRedis, k8s_secret: dict[str, str], key_prefix: str
) -> None:
    streams = names(Settings(key_prefix=key_prefix))
    operator = redis.Redis.from_url(secret_redis.url)
    for stage in SERVICES:
        operator.xadd(streams.input_of(stage), {"data": b"{}"})
        operator.xgroup_create(streams.input_of(stage), group_of(stage), id="0")
        operator.xreadgroup(group_of(stage), "c1", {streams.input_of(stage): ">"}, count=1)
        operator.xadd(streams.input_of(stage), {"data": b"{}"})
    assert k8s_secret["keda-redis-address"] == "redis.newsflow.svc:6379"
    keda = redis.Redis(
        port=secret_redis.port, username=k8s_secret["keda-redis-username"], password=k8s_secret["keda-redis-password"]
    )
    for stage in SERVICES:
        stream = streams.input_of(stage)
        [group] = keda.xinfo_groups(stream)  # lagCount (Redis >= 7: the group's lag field)
        assert group["name"] == group_of(stage).encode() and group["pending"] == 1
        assert keda.xpending(stream, group_of(stage))["pending"] == 1  # pendingEntriesCount
        assert keda.xlen(stream) == 2
    for forbidden in (
        lambda: keda.xadd(streams.raw, {"data": b"{}"}),
        lambda: keda.xrange(streams.raw),
        lambda: keda.xack(streams.raw, "ingest", "0-1"),
        lambda: keda.xinfo_groups(streams.dlq),
        lambda: keda.get(streams.key("dedup", "x")),
        lambda: keda.config_get("*"),
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            forbidden()
    # Every service's URL logs in as that service's own ACL user.
    for name in (*SERVICES, "api"):
        url = secret_redis.local(k8s_secret[f"redis-url-{name}"])
        assert url.startswith(f"redis://{name}:")
        client = redis.Redis.from_url(url)
        assert client.ping() and client.xlen(streams.input_of("ingest" if name == "api" else name)) == 2


def pod_environment(
    deployment: dict[str, Any],
    config: dict[str, str],
    secret: dict[str, str],
    redis_server: SecretRedis,
    storage_url: str,
    data_dir: Path,
) -> dict[str, str]:
    """What the pod's container gets (the image's ENV, its ConfigMap, then its env with the Secret's values)."""
    spec = container(deployment)
    [source] = spec["envFrom"]
    assert source["configMapRef"]["name"].startswith("newsflow-config")
    env = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1", "NEWSFLOW_DATA_DIR": str(data_dir), **config}
    for entry in spec.get("env", []):
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        env[entry["name"]] = secret[ref["key"]] if ref else entry["value"]
    # Pointed at this machine: the test's Redis with the Secret's ACL, a private PostgreSQL schema.
    env["NEWSFLOW_REDIS_URL"] = redis_server.local(env["NEWSFLOW_REDIS_URL"])
    if "NEWSFLOW_STORAGE_URL" in env:
        env["NEWSFLOW_STORAGE_URL"] = storage_url
    env["NEWSFLOW_HTTP_HOST"] = "127.0.0.1"
    # Every pod has its own 8000; here they share one machine: start_service(..., http=True) gives each a free port.
    env.pop("NEWSFLOW_HTTP_PORT", None)
    env["NEWSFLOW_CLAIM_INTERVAL_MS"] = "500"
    return {"PATH": os.environ["PATH"], "HOME": str(data_dir), **env}


def read_only_root(command: list[str], writable: list[Path]) -> list[str]:
    """`command` in a mount namespace of its own with / read-only but for `writable` (readOnlyRootFilesystem with
    emptyDir volumes); unchanged where this process may not make one (not root, no unshare)."""
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or unshare is None:
        return command
    binds = "".join(f"mount --bind {shlex.quote(str(path))} {shlex.quote(str(path))}; " for path in writable)
    script = f"set -e; mount --make-rprivate /; {binds}mount -o remount,bind,ro /; " + 'exec "$@"'
    return [unshare, "--mount", "sh", "-c", script, "sh", *command]


@pytest.mark.slow
def test_each_service_runs_with_its_pods_environment(
    secret_redis: SecretRedis,
    k8s_secret: dict[str, str],
    key_prefix: str,
    postgres_schema_url: str,
    tmp_path: Path,
    start_service: Callable[..., ServiceProcess],
) -> None:
    objects = render(K8S)
    config = {**config_map(objects), "NEWSFLOW_KEY_PREFIX": key_prefix}
    probe = read_only_root(["sh", "-c", f"touch {tmp_path}/ok && ! touch {ROOT}/.k8s-ro-probe 2>/dev/null"], [tmp_path])
    if probe[0] != "sh":  # the root file system really is read-only for the services below, their volumes are not
        assert subprocess.run(probe, capture_output=True).returncode == 0 and (tmp_path / "ok").exists()
        assert not (ROOT / ".k8s-ro-probe").exists()
    running: dict[str, dict[str, str]] = {}
    for name in ("publish", "api", "enrich", "clean", "ingest", "fetch"):  # publish first: it migrates the store
        deployment = by_kind(objects, "Deployment")[name]
        data = tmp_path / name / "data"  # the pod's emptyDir volumes
        scratch = tmp_path / name / "tmp"
        data.mkdir(parents=True)
        scratch.mkdir()
        env = {**pod_environment(deployment, config, k8s_secret, secret_redis, postgres_schema_url, data)}
        env["TMPDIR"] = str(scratch)
        command = [sys.executable, "-m", "newsflow.cli", *container(deployment)["args"]]
        running[name] = start_service(name, env, read_only_root(command, [data, scratch]), http=True).env
    for name, env in running.items():
        spec = container(by_kind(objects, "Deployment")[name])
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            url = f"http://127.0.0.1:{env['NEWSFLOW_HTTP_PORT']}{spec[probe]['httpGet']['path']}"
            wait_for(lambda url=url: httpx.get(url).status_code == 200, timeout=30, what=f"{name} {probe} {url}")  # type: ignore[misc]
    response = httpx.post(
        f"http://127.0.0.1:{running['ingest']['NEWSFLOW_HTTP_PORT']}/articles",
        json={"id": "k8s-seed", "text": SEED.read_text()},
        headers={"Authorization": f"Bearer {k8s_secret['api-token']}"},
    )
    assert response.status_code == 202, response.text
    operator = redis.Redis.from_url(secret_redis.url)
    streams = names(Settings(key_prefix=key_prefix))
    wait_for(lambda: operator.xlen(streams.published) == 1, timeout=120, what="the article published")
    assert operator.xlen(streams.dlq) == 0
    found = httpx.get(
        f"http://127.0.0.1:{running['api']['NEWSFLOW_HTTP_PORT']}/articles",
        params={"q": "Shoigu", "fields": "id"},
        headers={"Authorization": f"Bearer {k8s_secret['read-token']}"},
    )
    assert [item["id"] for item in found.json()["items"]] == [response.json()["queued"][0]["article_id"]]
