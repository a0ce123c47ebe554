"""The docker backend on the real engine: health, orders, a network and container faults, down."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from chaoskit.cli import app
from chaoskit.faults.container import ContainerFaults, cleanup_containers, undo_recorded
from chaoskit.faults.toxiproxy import Toxic, ToxiproxyClient
from chaoskit.stack.docker import DockerServiceStatus, DockerStack
from chaoskit.stack.endpoints import SERVICES
from chaoskit.stack.engine import LABEL_RUN, LABEL_STACK

pytestmark = pytest.mark.docker

STACK_NAME = "dtest"  # the docker_target fixture's
BASE_PORT = 19700 + int(os.environ.get("CHAOSKIT_TEST_PORT_SHIFT", "0"))


def test_every_service_answers_on_its_published_port(docker_stack: DockerStack) -> None:
    endpoints = docker_stack.endpoints()
    assert endpoints.kind == "docker"
    assert endpoints.gateway_url == f"http://127.0.0.1:{BASE_PORT + 10}"
    with httpx.Client(timeout=2.0, trust_env=False) as http:
        for service in SERVICES:
            answer = http.get(f"{endpoints.services[service]}/healthz")
            assert answer.status_code == 200
            assert answer.json() == {"status": "ok", "service": service}
        stats = http.get(f"{endpoints.services['store']}/stats").json()
        assert stats["service"] == "store"
    with ToxiproxyClient(endpoints.toxiproxy_urls[0]) as toxiproxy:
        proxies = toxiproxy.proxies()
    assert sorted(proxies) == sorted(endpoints.proxies)
    # The proxies reach each service by its container name on the stack's network.
    assert proxies["store"].upstream == f"chaoskit-{STACK_NAME}-store:{BASE_PORT + 15}"


def test_containers_are_labelled_and_publish_on_loopback_only(
    docker_stack: DockerStack, docker_client: Any
) -> None:
    containers = docker_client.containers.list(
        all=True, filters={"label": f"{LABEL_STACK}={STACK_NAME}"}
    )
    assert sorted(c.name for c in containers) == sorted(
        f"chaoskit-{STACK_NAME}-{part}" for part in ("toxiproxy", *SERVICES)
    )
    runs = {c.labels[LABEL_RUN] for c in containers}
    assert len(runs) == 1 and runs.pop().startswith("up-")
    for container in containers:
        bindings = container.attrs["NetworkSettings"]["Ports"]
        host_ips = {b["HostIp"] for v in bindings.values() if v for b in v}
        assert host_ips == {"127.0.0.1"}, container.name
    network = docker_client.networks.get(f"chaoskit-{STACK_NAME}")
    assert network.attrs["Labels"][LABEL_STACK] == STACK_NAME


def test_an_order_through_the_gateway_is_ok(docker_stack: DockerStack, place_order: Any) -> None:
    result = place_order(docker_stack.endpoints().gateway_url)
    assert result.status == 200, result.body
    assert result.body["outcome"] == "ok"


def test_status_shows_containers_health_ports_and_restarts(docker_stack: DockerStack) -> None:
    status = docker_stack.status()
    assert status.healthy and status.kind == "docker"
    rows = {row.service: row for row in status.services}
    store = rows["store"]
    assert isinstance(store, DockerServiceStatus)
    assert store.container == f"chaoskit-{STACK_NAME}-store"
    assert store.state == "running" and store.restarts == 0
    assert store.published == f"127.0.0.1:{BASE_PORT + 15}->{BASE_PORT + 15}/tcp"
    assert store.to_json()["container"] == store.container


def test_latency_toxic_on_inventory_slows_orders(
    docker_stack: DockerStack, place_order: Any
) -> None:
    endpoints = docker_stack.endpoints()
    before = statistics.median(place_order(endpoints.gateway_url).seconds for _ in range(5))
    with ToxiproxyClient(endpoints.toxiproxy_urls[0]) as toxiproxy:
        toxiproxy.add_toxic(
            "inventory",
            Toxic(name="dtest-latency", type="latency", attributes={"latency": 300, "jitter": 0}),
        )
        try:
            results = [place_order(endpoints.gateway_url) for _ in range(5)]
        finally:
            toxiproxy.remove_toxic("inventory", "dtest-latency")
    assert all(r.status == 200 for r in results), [r.body for r in results]
    during = statistics.median(r.seconds for r in results)
    assert during - before >= 0.25, (before, during)


def test_paused_store_fails_orders_at_store_then_recovers(
    docker_stack: DockerStack, place_order: Any, order_ok_within: Any
) -> None:
    endpoints = docker_stack.endpoints()
    rollback = ContainerFaults().apply("container_pause", endpoints.containers["store"], {})
    try:
        failed = [place_order(endpoints.gateway_url) for _ in range(2)]
    finally:
        rollback.undo()
    assert [r.body.get("step") for r in failed] == ["store", "store"], [r.body for r in failed]
    assert all(r.status >= 500 for r in failed)
    rollback.undo()  # a second undo does nothing
    assert order_ok_within(endpoints.gateway_url).status == 200


def test_killed_rider_fails_orders_then_restarts_and_recovers(
    docker_stack: DockerStack, place_order: Any, order_ok_within: Any
) -> None:
    endpoints = docker_stack.endpoints()
    rollback = ContainerFaults().apply("container_kill", endpoints.containers["rider"], {})
    try:
        failed = place_order(endpoints.gateway_url)
    finally:
        rollback.undo()
    assert failed.body.get("step") == "rider", failed.body
    assert rollback.recovered is True and rollback.recovery_s is not None
    assert order_ok_within(endpoints.gateway_url).status == 200


def test_stopped_inventory_is_started_again_at_window_end(
    docker_stack: DockerStack, place_order: Any, docker_client: Any, order_ok_within: Any
) -> None:
    endpoints = docker_stack.endpoints()
    name = endpoints.containers["inventory"]
    rollback = ContainerFaults(stop_grace_s=1).apply("container_stop", name, {})
    try:
        assert docker_client.containers.get(name).status == "exited"
        assert place_order(endpoints.gateway_url).body.get("step") == "inventory"
    finally:
        rollback.undo()
    assert rollback.recovered is True
    assert order_ok_within(endpoints.gateway_url).status == 200


def test_cpu_limit_is_applied_and_restored(
    docker_stack: DockerStack, place_order: Any, docker_client: Any
) -> None:
    name = docker_stack.endpoints().containers["gateway"]
    rollback = ContainerFaults().apply("cpu_limit", name, {"service": "gateway", "cpus": 0.5})
    try:
        limited = docker_client.containers.get(name).attrs["HostConfig"]
        assert (limited["CpuQuota"], limited["CpuPeriod"]) == (50_000, 100_000)
        assert place_order(docker_stack.endpoints().gateway_url).status == 200
    finally:
        rollback.undo()
    assert docker_client.containers.get(name).attrs["HostConfig"]["CpuQuota"] <= 0


def test_cleanup_undoes_a_leftover_pause(docker_stack: DockerStack, docker_client: Any) -> None:
    name = docker_stack.endpoints().containers["lbs"]
    ContainerFaults().apply("container_pause", name, {})  # its Rollback is "lost"
    assert cleanup_containers(STACK_NAME) == [f"unpaused {name}"]
    assert docker_client.containers.get(name).status == "running"
    # From a run record instead: the run died between apply and undo.
    ContainerFaults().apply("container_pause", name, {})
    undo_recorded({"kind": "container_pause", "container": name, "params": {}})
    assert docker_client.containers.get(name).status == "running"


def test_logs_command_prints_the_container_output(docker_stack: DockerStack) -> None:
    source = docker_stack.target.source
    result = CliRunner().invoke(app, ["logs", "gateway", "--tail", "20", "-t", str(source)])
    assert result.exit_code == 0, result.output
    assert "gateway listening" in result.output


EXPERIMENT = """\
version: 1
name: docker-faults
target: {target}
seed: 3
recovery: 3s
load:
  model: open
  behaviour: {{reclick: 0, think_time: 200ms, request_timeout: 5s}}
  shape: {{kind: constant, for: 14s, rate: 8}}
faults:
  - {{name: slow-inventory, kind: latency, dependency: inventory, latency: 300ms, at: 2s, for: 4s}}
  - {{name: store-paused, kind: container_pause, service: store, at: 7s, for: 4s}}
hypothesis:
  - {{metric: fulfilment_rate, min: 0.9, phase: baseline}}
  - {{metric: fulfilment_rate, max: 0.9, phase: during}}
  - {{metric: lost_orders, max: 0}}
report: {{formats: [json], dir: {reports}}}
"""


def test_an_experiment_with_a_network_and_a_container_fault_runs_unchanged(
    docker_stack: DockerStack, tmp_path: Path
) -> None:
    experiment = tmp_path / "docker-faults.yaml"
    experiment.write_text(
        EXPERIMENT.format(target=docker_stack.target.source, reports=tmp_path / "reports"),
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-m", "chaoskit", "run", str(experiment), "--no-dashboard"],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (summary_file,) = (tmp_path / "reports").glob("*/summary.json")
    summary = json.loads(summary_file.read_text(encoding="utf-8"))
    assert summary["verdict"] == "held"
    assert summary["environment"]["target_kind"] == "docker"
    assert [(f["name"], f["status"]) for f in summary["faults"]] == [
        ("slow-inventory", "removed"),
        ("store-paused", "removed"),
    ]
    assert summary["metrics"]["failures.store"] > 0
    # The run used the stack that was up, and left it up and unpaused.
    assert docker_stack.status().healthy


def test_down_removes_every_labelled_thing_and_is_harmless_twice(
    docker_stack: DockerStack, docker_client: Any
) -> None:
    assert docker_stack.down() is True
    label = {"label": f"{LABEL_STACK}={STACK_NAME}"}
    assert docker_client.containers.list(all=True, filters=label) == []
    assert docker_client.networks.list(filters=label) == []
    assert docker_client.volumes.list(filters=label) == []
    assert docker_stack.down() is False
    assert docker_stack.is_up() is False
