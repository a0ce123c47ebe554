"""Target files: validation with file:line:col, built-in names, the port layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaoskit.errors import TargetFileError
from chaoskit.exit_codes import exit_code_for_error
from chaoskit.stack.endpoints import DEPENDENCIES
from chaoskit.stack.target import (
    AttachTarget,
    DockerTarget,
    LocalTarget,
    load_target,
    parse_target,
    port_layout,
    with_kind,
)

GOOD = """\
version: 1
kind: local
name: local
base_port: 18400
settings:
  store:
    capacity_per_s: 50
  rider: {riders: 3}
"""


def test_a_good_local_target() -> None:
    target = parse_target(GOOD)
    assert isinstance(target, LocalTarget)
    assert target.base_port == 18400
    assert target.settings.by_service() == {
        "store": {"capacity_per_s": 50},
        "rider": {"riders": 3},
    }


def test_port_layout_follows_the_contract() -> None:
    layout = port_layout(18400)
    assert layout.toxiproxy_api == 18474
    assert layout.services["gateway"] == 18410
    assert [layout.services[d] for d in DEPENDENCIES] == list(range(18411, 18418))
    assert [layout.proxies[d] for d in DEPENDENCIES] == list(range(18421, 18428))
    assert len(layout.all_ports()) == 1 + 8 + 7  # no two parts share a port


@pytest.mark.parametrize(
    ("source", "line", "col", "message"),
    [
        (GOOD.replace("base_port: 18400", "base_port: lots"), 4, 1, "base_port: input should be"),
        (GOOD.replace("base_port: 18400", "base_port: 80"), 4, 1, "base_port: input should be"),
        (GOOD.replace("kind: local", "kind: lokal"), 2, 1, "kind: expected local, docker or"),
        (GOOD.replace("kind: local\n", ""), 1, 1, "kind: required key is missing"),
        (GOOD.replace("name: local\n", ""), 1, 1, "name: required key is missing"),
        (GOOD.replace("  rider:", "  riders:"), 8, 3, "settings.riders: unknown key"),
        (GOOD + "colour: blue\n", 9, 1, "colour: unknown key"),
        (GOOD.replace("version: 1", "version: 2"), 1, 1, "version: input should be 1"),
        ("version: 1\nkind: local\nname: [\n", 4, 1, "YAML syntax error"),
        ("- 1\n- 2\n", 1, 1, "expected a mapping"),
    ],
)
def test_errors_point_at_the_offending_key(
    tmp_path: Path, source: str, line: int, col: int, message: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(source)
    with pytest.raises(TargetFileError) as caught:
        load_target(path)
    error = caught.value
    assert (error.line, error.col) == (line, col), str(error)
    assert message in error.message
    assert str(error).startswith(f"{path}:{line}:{col}: ")
    assert exit_code_for_error(error) == 2


def test_docker_target_has_image_settings_and_converts() -> None:
    target = parse_target("version: 1\nkind: docker\nname: d\nimage: {name: me/os:1}\n")
    assert isinstance(target, DockerTarget)
    assert target.image.name == "me/os:1"
    local = with_kind(target, "local")
    assert isinstance(local, LocalTarget) and local.name == "d"


def test_attach_target_is_one_of_the_kinds() -> None:
    # The attach keys themselves are tested in test_attach_target.py.
    target = parse_target(
        "version: 1\nkind: attach\nname: staging\ngateway: {url: 'http://x'}\n"
        "toxiproxy: [{url: 'http://x:8474', proxies: {store: store}}]\nallowed_hosts: [x]\n"
    )
    assert isinstance(target, AttachTarget)


def test_builtin_local_resolves_to_the_repo_file() -> None:
    target = load_target("local")
    assert isinstance(target, LocalTarget)
    assert target.source is not None and target.source.name == "local.yaml"
    assert target.base_port == 18400


def test_builtin_prefers_targets_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "targets").mkdir()
    (tmp_path / "targets" / "local.yaml").write_text(GOOD.replace("18400", "20400"))
    monkeypatch.chdir(tmp_path)
    target = load_target("local")
    assert isinstance(target, LocalTarget) and target.base_port == 20400


def test_unknown_names_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(TargetFileError, match="unknown target 'staging'"):
        load_target("staging")
    with pytest.raises(TargetFileError, match="no such target file"):
        load_target(tmp_path / "nope.yaml")
