"""docker-compose.yml checked without a Docker engine: the Compose schema, its commands, healthchecks, secrets and
Redis ACL users, and each service's command run locally the way compose runs it (against a test-owned Redis
with the ACL file rendered by the same script the redis container runs)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import redis
import typer
import yaml

from shared.streams import SERVICES, STAGES
from tests.conftest import FIXTURES, ROOT, SEED, ServiceProcess, wait_for
from tests.httpsite import Site
from tests.integration.test_api import console_login
from tests.servers import RedisServer

pytestmark = pytest.mark.integration

COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
SCHEMA = FIXTURES / "compose" / "compose-spec.json"
VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR:?error} and $$, applied through the whole document."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, operator, argument = match.group(1), match.group(2), match.group(3)
        current = env.get(name)
        unset = current is None or (operator is not None and operator.startswith(":") and current == "")
        if operator in (":-", "-") and unset:
            return str(argument)
        if operator in (":?", "?") and unset:
            raise KeyError(f"{name}: {argument}")
        return current or ""

    return VARIABLE.sub(substitute, value)


def example_env() -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines() if line and not line.startswith("#")
    )


def generated_env() -> dict[str, str]:
    """What `sh deploy/gen-env.sh > .env` produces."""
    run = subprocess.run(["sh", str(ROOT / "deploy" / "gen-env.sh")], capture_output=True, text=True, check=True)
    return dict(line.split("=", 1) for line in run.stdout.splitlines() if line and not line.startswith("#"))


def newsflow_services(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: spec for name, spec in document["services"].items() if spec.get("image") == "newsflow:latest"}


def test_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    errors = list(validator_class(schema).iter_errors(compose()))
    assert not errors, [f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors]
    # The schema does catch mistakes: a misspelt key fails it.
    broken = compose()
    broken["services"]["clean"]["restart_policy"] = "always"
    assert list(validator_class(schema).iter_errors(broken))


def test_every_variable_is_documented_and_every_secret_is_required() -> None:
    used = {m.group(1) for m in VARIABLE.finditer(COMPOSE.read_text()) if m.group(1)}
    documented = example_env()
    assert used <= set(documented), f"not in .env.example: {sorted(used - set(documented))}"
    required = {m.group(1) for m in VARIABLE.finditer(COMPOSE.read_text()) if m.group(2) == ":?"}
    assert {"NEWSFLOW_API_TOKEN", "POSTGRES_PASSWORD", "REDIS_INGEST_PASSWORD"} <= required
    # No secret ships with a value: with .env.example as is, compose refuses to start.
    assert all(documented[name] == "" for name in required)
    with pytest.raises(KeyError, match=r"set \w+ in \.env"):
        interpolate(compose(), documented)
    filled = generated_env()
    assert all(len(filled[name]) >= 32 and re.fullmatch(r"[0-9a-f]+", filled[name]) for name in required)
    assert len({filled[name] for name in required}) == len(required), "every secret is its own"
    interpolate(compose(), filled)


def test_services_scale_restart_and_stay_off_public_interfaces() -> None:
    document = interpolate(compose(), generated_env())
    assert set(newsflow_services(document)) == {*SERVICES, "api"}
    for name, spec in document["services"].items():
        assert "container_name" not in spec, f"{name}: container_name prevents --scale"
        assert spec["restart"] == "unless-stopped", name
        assert spec["healthcheck"]["test"], name
    published = {name: spec.get("ports", []) for name, spec in document["services"].items()}
    assert {name for name, ports in published.items() if ports} == {"redis", "ingest", "api"}
    for ports in published.values():
        assert all(str(port).startswith("127.0.0.1:") for port in ports), ports
    redis_spec = document["services"]["redis"]
    assert "--appendonly" in redis_spec["command"] and "yes" in redis_spec["command"]
    assert any(volume.endswith(":/var/lib/postgresql/data") for volume in document["services"]["postgres"]["volumes"])
    for name, spec in newsflow_services(document).items():
        url = spec["environment"]["NEWSFLOW_REDIS_URL"]
        assert url.startswith(f"redis://{name}:"), "each service connects as its own ACL user"
        other_secrets = [v for k, v in generated_env().items() if "PASSWORD" in k and name.upper() not in k]
        assert not any(secret in json.dumps(spec) for secret in other_secrets if secret and "POSTGRES" not in secret)


def test_the_image_is_built_once_and_never_pulled() -> None:
    services = newsflow_services(compose())
    builders = {name for name, spec in services.items() if "build" in spec}
    # Four `build: .` built the same image four times in parallel; one builder, the rest reuse its image.
    assert builders == {"ingest"}
    assert services["ingest"]["build"]["context"] == "."
    assert services["ingest"]["build"]["args"]["PYTHON_IMAGE"] == "python:3.11-slim"
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", (ROOT / "Dockerfile").read_text(), re.M)
    # newsflow:latest is on no registry: `docker compose pull` must not try it; the builder builds it on every `up`
    # (an existing image from older code is otherwise kept).
    assert {name: spec["pull_policy"] for name, spec in services.items()} == {
        name: "build" if name == "ingest" else "never" for name in services
    }


def test_the_stand_in_override_swaps_only_images_and_the_base_image() -> None:
    override = yaml.safe_load((ROOT / "deploy" / "test" / "compose.stand-ins.yml").read_text())

    def leaves(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
        if isinstance(node, dict):
            for key, value in node.items():
                yield from leaves(value, (*path, key))
        else:
            yield path

    changed = set(leaves(override))
    assert changed == {
        ("services", "redis", "image"),
        ("services", "postgres", "image"),
        ("services", "ingest", "build", "args", "PYTHON_IMAGE"),
    }
    for path in changed:  # every service and argument it names is one the compose file has
        node = compose()
        for key in path[:-1]:
            node = node[key]
        assert path[-1] in node, path


def test_commands_and_healthchecks_match_the_code() -> None:
    from newsflow.cli import app
    from shared.observability.health import build_app
    from shared.settings import Settings

    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["newsflow"]' in dockerfile
    assert re.search(r"^USER newsflow$", dockerfile, re.M), "the image runs as a non-root user"
    cli = typer.main.get_command(app)
    document = compose()
    for name, spec in newsflow_services(document).items():
        command_name, *args = spec["command"]
        command = cli.commands[command_name]  # type: ignore[attr-defined]
        command.make_context(command_name, list(args))  # parses: the arguments are valid for the command
        assert args == [name]
        healthcheck = " ".join(spec["healthcheck"]["test"][1:])
        [path] = re.findall(r"'(/[a-z]+)'", healthcheck)
        if name == "api":  # its own app; test_each_service_runs_as_compose_runs_it runs the healthcheck on it
            assert path == "/healthz"
            continue
        routes = {route.path for route in build_app(name, "s", "g", Settings(), redis.asyncio.Redis()).routes}
        assert path in routes, f"{name}: healthcheck hits {path}, which the service does not serve"


class AclRedis(RedisServer):
    """A test-owned redis-server started with the ACL file rendered by deploy/redis/render-acl.sh."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        rendered = subprocess.run(
            ["sh", str(ROOT / "deploy" / "redis" / "render-acl.sh")], env=env, capture_output=True, text=True
        )
        assert rendered.returncode == 0, rendered.stderr
        acl = workdir / "users.acl"
        acl.write_text(rendered.stdout)
        self.acl_text = rendered.stdout
        super().__init__(workdir, extra_args=["--aclfile", str(acl)])
        # No connection is let in without a user and password: `start` waits by PINGing as the operator.
        self.login = f"operator:{env['REDIS_OPERATOR_PASSWORD']}"
        self.start()

    def client(self, user: str, password: str) -> redis.Redis:
        return redis.Redis(port=self.port, username=user, password=password)


@pytest.fixture
def stack_env(key_prefix: str) -> dict[str, str]:
    return {**generated_env(), "NEWSFLOW_KEY_PREFIX": key_prefix}


@pytest.fixture
def acl_redis(tmp_path: Path, stack_env: dict[str, str]) -> Iterator[AclRedis]:
    server = AclRedis(tmp_path / "acl-redis", {"PATH": "/usr/bin:/bin", **stack_env})
    yield server
    server.stop(kill=True)


def test_acl_users_may_touch_only_their_own_keys(acl_redis: AclRedis, stack_env: dict[str, str]) -> None:
    prefix = stack_env["NEWSFLOW_KEY_PREFIX"]
    assert "PASSWORD" not in acl_redis.acl_text and stack_env["REDIS_INGEST_PASSWORD"] not in acl_redis.acl_text
    # Nothing without a user: not even PING, and the default user cannot log in.
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(port=acl_redis.port).xadd(f"{prefix}:raw", {"data": b"{}"})
    with pytest.raises(redis.exceptions.AuthenticationError):
        acl_redis.client("default", "").ping()
    ingest = acl_redis.client("ingest", stack_env["REDIS_INGEST_PASSWORD"])
    for stream in ("raw", "ingested", "dlq"):
        ingest.xadd(f"{prefix}:{stream}", {"data": b"{}"})
    for forbidden in (f"{prefix}:cleaned", f"{prefix}:published", "other:raw"):
        with pytest.raises(redis.exceptions.NoPermissionError):
            ingest.xadd(forbidden, {"data": b"{}"})
    with pytest.raises(redis.exceptions.NoPermissionError):
        ingest.flushall()
    # A dead letter's payload is a key of its own: each stage may write and drop those, and no other strings.
    for user in ("ingest", "clean", "enrich", "publish", "fetch"):
        stage_user = acl_redis.client(user, stack_env[f"REDIS_{user.upper()}_PASSWORD"])
        with stage_user.pipeline(transaction=True) as pipe:
            pipe.set(f"{prefix}:dlq:payload:{user}", b"{}")
            pipe.xadd(f"{prefix}:dlq", {"data": b"{}", "payload_key": user})
            pipe.execute()
        assert stage_user.unlink(f"{prefix}:dlq:payload:{user}") == 1
        if user in ("ingest", "clean", "publish"):  # their commit is a Lua script: the same rights inside it
            script = "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('XADD', KEYS[2], '*', 'data', ARGV[1])"
            stage_user.eval(script, 2, f"{prefix}:dlq:payload:{user}", f"{prefix}:dlq", "{}")
            assert stage_user.unlink(f"{prefix}:dlq:payload:{user}") == 1
    for forbidden in (f"{prefix}:raw", f"{prefix}:dlq", "other:dlq:payload:x"):
        with pytest.raises(redis.exceptions.NoPermissionError):
            ingest.set(forbidden, b"x")
    producer = acl_redis.client("producer", stack_env["REDIS_PRODUCER_PASSWORD"])
    producer.xadd(f"{prefix}:raw", {"data": b"{}"})
    with pytest.raises(redis.exceptions.NoPermissionError):
        producer.xrange(f"{prefix}:raw")
    with pytest.raises(redis.exceptions.NoPermissionError):
        producer.xadd(f"{prefix}:ingested", {"data": b"{}"})
    operator = acl_redis.client("operator", stack_env["REDIS_OPERATOR_PASSWORD"])
    assert operator.xlen(f"{prefix}:raw") == 2  # ingest's and the producer's (fetch's comes below)
    with pytest.raises(redis.exceptions.NoPermissionError):
        operator.config_get("*")
    api = acl_redis.client("api", stack_env["REDIS_API_PASSWORD"])
    ingest.set(f"{prefix}:dlq:payload:t", b"{}")
    with api.pipeline(transaction=True) as pipe:  # a replay: WATCH the payload, XADD to the input, XDEL, UNLINK
        pipe.watch(f"{prefix}:dlq:payload:t")
        assert pipe.get(f"{prefix}:dlq:payload:t") == b"{}"
        pipe.multi()
        pipe.xadd(f"{prefix}:dlq", {"data": b"{}"})
        pipe.unlink(f"{prefix}:dlq:payload:t")
        entry, _ = pipe.execute()
    assert api.xdel(f"{prefix}:dlq", entry) == 1 and api.xlen(f"{prefix}:raw") == 2
    with pytest.raises(redis.exceptions.NoPermissionError):
        api.set(f"{prefix}:dlq:payload:t", b"x")
    for forbidden in (f"{prefix}:dedup:x", "other:raw"):
        with pytest.raises(redis.exceptions.NoPermissionError):
            api.xadd(forbidden, {"data": b"{}"})
    with pytest.raises(redis.exceptions.NoPermissionError):
        api.flushall()
    fetch = acl_redis.client("fetch", stack_env["REDIS_FETCH_PASSWORD"])
    fetch.zadd(f"{prefix}:fetch:seen", {"https://n.example/1": 1})
    fetch.xadd(f"{prefix}:raw", {"data": b"{}"})
    for forbidden in (f"{prefix}:ingested", f"{prefix}:dedup:x"):
        with pytest.raises(redis.exceptions.NoPermissionError):
            fetch.xadd(forbidden, {"data": b"{}"})
    assert api.smembers(f"{prefix}:fetch:sources") == set()  # the status snapshot's sources
    with pytest.raises(redis.exceptions.NoPermissionError):
        api.zcard(f"{prefix}:fetch:seen")
    with pytest.raises(redis.exceptions.AuthenticationError):
        acl_redis.client("ingest", stack_env["REDIS_CLEAN_PASSWORD"]).ping()


def test_transactions_survive_a_redis_restart(acl_redis: AclRedis, stack_env: dict[str, str]) -> None:
    """Redis replays the append-only file's MULTI/EXEC blocks as the default user and re-checks them at EXEC: with
    a default user limited to PING, every stage's commit (output + acknowledgement) was dropped on restart."""
    prefix = stack_env["NEWSFLOW_KEY_PREFIX"]
    ingest = acl_redis.client("ingest", stack_env["REDIS_INGEST_PASSWORD"])
    ingest.xadd(f"{prefix}:raw", {"data": b"{}"})
    ingest.xgroup_create(f"{prefix}:raw", "ingest", id="0")
    [[_, [(entry_id, _)]]] = ingest.xreadgroup("ingest", "c1", {f"{prefix}:raw": ">"})
    commit = ingest.pipeline(transaction=True)  # what every stage does: output and acknowledgement at once
    commit.xadd(f"{prefix}:ingested", {"data": b"{}"})
    commit.xack(f"{prefix}:raw", "ingest", entry_id)
    commit.execute()
    acl_redis.stop()
    acl_redis.start()
    operator = acl_redis.client("operator", stack_env["REDIS_OPERATOR_PASSWORD"])
    assert operator.xlen(f"{prefix}:ingested") == 1
    assert operator.xpending(f"{prefix}:raw", "ingest")["pending"] == 0


def service_environment(
    spec: dict[str, Any], stack_env: dict[str, str], redis_port: int, tmp_path: Path
) -> dict[str, str]:
    """The container's environment as compose builds it, pointed at this machine's test Redis and a SQLite file."""
    environment = {k: str(v) for k, v in interpolate(spec["environment"], stack_env).items()}
    environment["NEWSFLOW_REDIS_URL"] = environment["NEWSFLOW_REDIS_URL"].replace(
        "@redis:6379/", f"@127.0.0.1:{redis_port}/"
    )
    # PostgreSQL of the stack is not here; the storage backends have their own tests.
    environment["NEWSFLOW_STORAGE_URL"] = f"sqlite:///{tmp_path / 'compose.db'}"
    environment["NEWSFLOW_HTTP_HOST"] = "127.0.0.1"
    environment.pop("NEWSFLOW_HTTP_PORT", None)  # start_service(..., http=True) gives each a free port
    environment["NEWSFLOW_DATA_DIR"] = str(tmp_path / "data")
    environment["NEWSFLOW_CLAIM_INTERVAL_MS"] = "500"
    import os

    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "PYTHONUNBUFFERED": "1", **environment}


@pytest.mark.slow
def test_each_service_runs_as_compose_runs_it(
    acl_redis: AclRedis,
    stack_env: dict[str, str],
    tmp_path: Path,
    start_service: Callable[..., ServiceProcess],
    site: Site,
) -> None:
    document = compose()
    services: dict[str, tuple[ServiceProcess, dict[str, str]]] = {}
    for name in ("api", *reversed(SERVICES)):  # downstream first, as compose would have them all up
        spec = newsflow_services(document)[name]
        given = stack_env
        if name == "fetch":
            # Compose refuses private addresses unless .env says otherwise; the test's feed is on 127.0.0.1.
            assert interpolate(spec["environment"], stack_env)["NEWSFLOW_FETCH_ALLOW_PRIVATE"] == "false"
            given = {**stack_env, "NEWSFLOW_FETCH_ALLOW_PRIVATE": "true"}
        # The image's entrypoint is `newsflow`: run the same command line through this checkout's CLI.
        command = [sys.executable, "-m", "newsflow.cli", *spec["command"]]
        env = service_environment(spec, given, acl_redis.port, tmp_path)
        service = start_service(name, env, command, http=True)
        services[name] = (service, service.env)

    for name, (_, env) in services.items():
        kind, check = (
            newsflow_services(document)[name]["healthcheck"]["test"][0],
            " ".join(newsflow_services(document)[name]["healthcheck"]["test"][1:]),
        )
        assert kind == "CMD-SHELL"
        run = subprocess.run(["sh", "-c", interpolate(check, {})], env=env, capture_output=True, text=True, timeout=30)
        assert run.returncode == 0, f"{name} healthcheck failed: {run.stderr}"
        ready = httpx.get(f"http://127.0.0.1:{env['NEWSFLOW_HTTP_PORT']}/readyz")
        assert ready.status_code == 200, (name, ready.text)

    ingest_env = services["ingest"][1]
    response = httpx.post(
        f"http://127.0.0.1:{ingest_env['NEWSFLOW_HTTP_PORT']}/articles",
        json={"id": "compose-seed", "text": SEED.read_text()},
        headers={"Authorization": f"Bearer {stack_env['NEWSFLOW_API_TOKEN']}"},
    )
    assert response.status_code == 202, response.text
    [queued] = response.json()["queued"]

    prefix = stack_env["NEWSFLOW_KEY_PREFIX"]
    operator = acl_redis.client("operator", stack_env["REDIS_OPERATOR_PASSWORD"])

    def published_ids() -> list[bytes]:
        return [fields[b"data"] for _, fields in operator.xrange(f"{prefix}:published")]

    def report() -> str:
        return "\n".join(f"--- {n}\n" + "\n".join(p.lines[-15:]) for n, (p, _) in services.items())

    try:
        wait_for(lambda: published_ids(), timeout=120, what="the article to pass all four services")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{report()}") from None
    [published] = published_ids()
    assert json.loads(published)["id"] == queued["article_id"]
    # The read API finds it, and its console reads the pipeline as the `api` ACL user.
    api_base = f"http://127.0.0.1:{services['api'][1]['NEWSFLOW_HTTP_PORT']}"
    found = httpx.get(f"{api_base}/articles", params={"q": "Shoigu", "fields": "id"},
                      headers={"Authorization": f"Bearer {stack_env['NEWSFLOW_READ_TOKEN']}"})
    assert [item["id"] for item in found.json()["items"]] == [queued["article_id"]], found.text
    with httpx.Client(base_url=api_base) as console:
        console_login(console, stack_env["NEWSFLOW_READ_TOKEN"])
        pipeline = console.get("/console/pipeline")
        assert pipeline.status_code == 200 and 'id="stage-publish"' in pipeline.text
    for stream in ("raw", "ingested", "cleaned", "enriched"):
        assert (
            operator.xpending(f"{prefix}:{stream}", STAGES[("raw", "ingested", "cleaned", "enriched").index(stream)])[
                "pending"
            ]
            == 0
        )
    assert operator.xlen(f"{prefix}:dlq") == 0, report()

    # fetch, as its own ACL user: a feed registered from inside its container ends up published too.
    site.add("/story.html", f"<html><head><title>Compose story</title></head><body><article><h1>Compose story</h1>"
             f"<p>{SEED.read_text()[:3000]}</p></article></body></html>")
    site.add("/feed.xml", f'<rss version="2.0"><channel><title>t</title><item><title>s</title>'
             f"<link>{site.url('/story.html')}</link></item></channel></rss>", content_type="application/rss+xml")
    fetch_env = services["fetch"][1]
    added = subprocess.run([sys.executable, "-m", "newsflow.cli", "sources", "add", site.url("/feed.xml")],
                           cwd=ROOT, env=fetch_env, capture_output=True, text=True, timeout=60)
    assert added.returncode == 0, added.stderr
    try:
        wait_for(lambda: len(published_ids()) == 2, timeout=120, what="the feed's story published")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{report()}") from None
    assert operator.xpending(f"{prefix}:discovered", "fetch")["pending"] == 0
    assert not any("NOPERM" in line for line in services["fetch"][0].lines), report()
    assert operator.xlen(f"{prefix}:dlq") == 0, report()

    # `newsflow status` as the operator user.
    status = subprocess.run(
        [sys.executable, "-m", "newsflow.cli", "status", "--json"],
        cwd=ROOT,
        env={
            **ingest_env,
            "NEWSFLOW_REDIS_URL": f"redis://operator:{stack_env['REDIS_OPERATOR_PASSWORD']}"
            f"@127.0.0.1:{acl_redis.port}/0",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 0, status.stderr
    assert shlex.quote(stack_env["REDIS_OPERATOR_PASSWORD"]) not in status.stdout + status.stderr
