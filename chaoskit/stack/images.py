"""The docker backend's images: built from ``targets/``, cached by the content of their inputs.

Online (a registry answers): the orderstack image is built ``FROM python:3.11-slim`` and
Toxiproxy is Shopify's official image. Offline (no registry): a base image is made from
Debian packages (debootstrap a minimal bookworm with python3, then ``docker import``), the
orderstack's Python deps are installed from wheels downloaded on the host, and Toxiproxy is
an image ``FROM scratch`` around the locally built static ``toxiproxy-server``.

Every image carries the label ``chaoskit.inputs=<sha256 of what it was built from>``; a build
whose inputs have not changed is skipped.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from chaoskit.errors import DockerUnavailable, EnvironmentProblem
from chaoskit.stack.engine import connect, engine_errors, hang_up, is_missing
from chaoskit.stack.state import chaoskit_home

__all__ = [
    "BASE_IMAGE_OFFLINE",
    "BASE_IMAGE_ONLINE",
    "LABEL_IMAGE",
    "LABEL_INPUTS",
    "ORDERSTACK_IMAGE",
    "TOXIPROXY_IMAGE_OFFLINE",
    "TOXIPROXY_IMAGE_ONLINE",
    "ImageBuilder",
    "ImageNames",
    "ImageOutcome",
    "image_names",
    "project_root",
]

ORDERSTACK_IMAGE = "chaoskit/orderstack:latest"
BASE_IMAGE_ONLINE = "python:3.11-slim"
BASE_IMAGE_OFFLINE = "chaoskit/base:bookworm"
TOXIPROXY_VERSION = "2.12.0"
TOXIPROXY_IMAGE_ONLINE = f"ghcr.io/shopify/toxiproxy:{TOXIPROXY_VERSION}"
TOXIPROXY_IMAGE_OFFLINE = f"chaoskit/toxiproxy:{TOXIPROXY_VERSION}"
LABEL_INPUTS = "chaoskit.inputs"
LABEL_IMAGE = "chaoskit.image"

# The offline base: Debian bookworm's python3 is 3.11, so host-side wheels target cp311.
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR_DEFAULT = "http://deb.debian.org/debian"
BASE_PACKAGES = ("python3", "python3-venv")
CONTAINER_PYTHON = "3.11"
# Bump when the base recipe changes in a way its inputs do not show.
_BASE_RECIPE = 1
_BASE_PATH = "/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Trimmed from the base rootfs: package caches and docs nobody reads inside a container.
_BASE_TRIM = (
    "var/cache/apt/archives",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
)

_TOXIPROXY_DOCKERFILE = """\
FROM scratch
COPY toxiproxy-server /toxiproxy
EXPOSE 8474
ENTRYPOINT ["/toxiproxy"]
CMD ["-host=0.0.0.0"]
"""

# Engine architecture (docker info) -> manylinux platform tags pip may pick wheels for.
_PLATFORMS = {
    "x86_64": ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"),
    "aarch64": ("manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64"),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageNames:
    """Which images a docker stack runs, and where they come from."""

    orderstack: str
    toxiproxy: str
    base: str  # the orderstack Dockerfile's BASE_IMAGE
    offline: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageOutcome:
    """What one image build step did."""

    image: str
    action: str  # "cached" | "built" | "pulled"
    seconds: float


def image_names(
    *, offline: bool, orderstack: str = ORDERSTACK_IMAGE, base: str | None = None
) -> ImageNames:
    """The image set for a mode; ``base`` overrides the orderstack image's BASE_IMAGE."""
    if offline:
        return ImageNames(
            orderstack=orderstack,
            toxiproxy=TOXIPROXY_IMAGE_OFFLINE,
            base=base or BASE_IMAGE_OFFLINE,
            offline=True,
        )
    return ImageNames(
        orderstack=orderstack,
        toxiproxy=TOXIPROXY_IMAGE_ONLINE,
        base=base or BASE_IMAGE_ONLINE,
        offline=False,
    )


def project_root() -> Path:
    """The chaoskit checkout (holds ``targets/orderstack``)."""
    return Path(__file__).resolve().parent.parent.parent


def _sha(*parts: bytes | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def _tree_files(root: Path) -> list[Path]:
    """Files under ``root`` that go into a build context, in a stable order."""
    skip_dirs = {"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d for d in dirnames if d not in skip_dirs and not d.endswith(".egg-info")
        )
        found.extend(Path(dirpath) / name for name in sorted(filenames))
    return found


def _tree_sha(root: Path) -> str:
    parts: list[bytes | str] = []
    for path in _tree_files(root):
        parts.append(str(path.relative_to(root)))
        parts.append(path.read_bytes())
    return _sha(*parts)


def debian_mirror() -> str:
    """The Debian mirror apt uses here ($CHAOSKIT_DEBIAN_MIRROR overrides)."""
    override = os.environ.get("CHAOSKIT_DEBIAN_MIRROR")
    if override:
        return override
    candidates: list[str] = []
    sources_dir = Path("/etc/apt/sources.list.d")
    for path in sorted(sources_dir.glob("*.sources")) if sources_dir.is_dir() else []:
        with contextlib.suppress(OSError):
            for stanza in path.read_text(encoding="utf-8").split("\n\n"):
                fields = dict(
                    (key.strip().lower(), value.strip())
                    for key, _, value in (
                        line.partition(":") for line in stanza.splitlines() if ":" in line
                    )
                    if not key.startswith("#")
                )
                if DEBIAN_SUITE in fields.get("suites", "").split():
                    candidates.extend(fields.get("uris", "").split())
    with contextlib.suppress(OSError):
        for line in Path("/etc/apt/sources.list").read_text(encoding="utf-8").splitlines():
            words = line.split()
            if len(words) >= 3 and words[0] == "deb" and words[2] == DEBIAN_SUITE:
                url = next((w for w in words[1:] if "://" in w), None)
                if url:
                    candidates.append(url)
    return candidates[0] if candidates else DEBIAN_MIRROR_DEFAULT


class ImageBuilder:
    """Builds (or reuses) the images of one mode; Rich progress when given a console."""

    def __init__(
        self,
        *,
        client: Any = None,
        root: Path | None = None,
        cache_dir: Path | None = None,
        console: Console | None = None,
    ) -> None:
        self._client = client
        self._own_client = client is None
        self._root = root or project_root()
        self._cache = cache_dir or chaoskit_home() / "images"
        self._console = console
        self._progress: Progress | None = None

    @property
    def client(self) -> Any:
        """The docker client, connected on first use."""
        if self._client is None:
            self._client = connect()
        return self._client

    # --- public -----------------------------------------------------------------------

    def missing(self, names: ImageNames) -> list[str]:
        """The images of ``names`` the engine does not have."""
        return [tag for tag in (names.orderstack, names.toxiproxy) if self._image(tag) is None]

    def build(self, names: ImageNames, *, force: bool = False) -> list[ImageOutcome]:
        """Make every image of ``names`` present and current; rebuilds only changed inputs."""
        self._cache.mkdir(parents=True, exist_ok=True)
        outcomes: list[ImageOutcome] = []
        with self._lock(), self._progress_display():
            try:
                if names.offline:
                    if names.base == BASE_IMAGE_OFFLINE:
                        outcomes.append(self._build_base(force=force))
                    outcomes.append(self._build_orderstack(names, force=force))
                    outcomes.append(self._build_toxiproxy(names.toxiproxy, force=force))
                else:
                    outcomes.append(self._build_orderstack(names, force=force))
                    outcomes.append(self._pull(names.toxiproxy))
            except engine_errors() as exc:
                raise _engine_problem(exc) from exc
            finally:
                if self._own_client:
                    hang_up(self._client)
        return outcomes

    # --- steps ------------------------------------------------------------------------

    def _build_base(self, *, force: bool) -> ImageOutcome:
        started = time.monotonic()
        inputs = _sha(
            json.dumps(
                {"recipe": _BASE_RECIPE, "suite": DEBIAN_SUITE, "packages": BASE_PACKAGES},
                sort_keys=True,
            )
        )
        tag = BASE_IMAGE_OFFLINE
        if not force and self._current(tag, inputs):
            return ImageOutcome(image=tag, action="cached", seconds=time.monotonic() - started)
        if os.geteuid() != 0:
            raise EnvironmentProblem(
                "building the offline base image needs root (debootstrap, chroot): run "
                "`sudo chaoskit images build --offline`"
            )
        debootstrap = shutil.which("debootstrap")
        if debootstrap is None:
            raise EnvironmentProblem(
                "debootstrap is not installed; install it (`apt-get install debootstrap`) and "
                "run `chaoskit images build --offline` again"
            )
        mirror = debian_mirror()
        rootfs = self._cache / "rootfs-bookworm.tmp"
        shutil.rmtree(rootfs, ignore_errors=True)
        log = self._cache / "debootstrap.log"
        task = self._task(f"base {tag}: debootstrap {DEBIAN_SUITE} from {mirror}")
        try:
            self._run(
                [
                    debootstrap,
                    "--variant=minbase",
                    f"--include={','.join(BASE_PACKAGES)}",
                    DEBIAN_SUITE,
                    str(rootfs),
                    mirror,
                ],
                log=log,
                what="debootstrap",
            )
            for relative in _BASE_TRIM:
                target = rootfs / relative
                shutil.rmtree(target, ignore_errors=True)
                target.mkdir(parents=True, exist_ok=True)
            # A venv makes `python` and `pip` work like in python:*-slim, so one Dockerfile
            # serves both modes (bookworm's system pip refuses installs: PEP 668).
            self._run(
                ["chroot", str(rootfs), "python3", "-m", "venv", "/opt/venv"],
                log=log,
                what="venv in the base rootfs",
            )
            self._describe(task, f"base {tag}: docker import")
            old = self._image(tag)
            tar = subprocess.Popen(
                ["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            assert tar.stdout is not None
            try:
                self.client.api.import_image(
                    src=tar.stdout,
                    repository=tag.split(":")[0],
                    tag=tag.split(":")[1],
                    stream_src=True,
                    changes=[
                        f"ENV PATH={_BASE_PATH}",
                        "ENV LANG=C.UTF-8",
                        f"LABEL {LABEL_INPUTS}={inputs}",
                        f"LABEL {LABEL_IMAGE}=base",
                        'CMD ["python3"]',
                    ],
                )
            finally:
                tar.stdout.close()
                _, tar_err = tar.communicate()
            if tar.returncode != 0:
                raise EnvironmentProblem(
                    f"tar of the base rootfs failed: {tar_err.decode(errors='replace').strip()}"
                )
        finally:
            shutil.rmtree(rootfs, ignore_errors=True)
        self._forget(old, tag)
        self._done(task, f"base {tag}: built")
        return ImageOutcome(image=tag, action="built", seconds=time.monotonic() - started)

    def _build_orderstack(self, names: ImageNames, *, force: bool) -> ImageOutcome:
        started = time.monotonic()
        source = self._root / "targets" / "orderstack"
        dockerfile = source / "Dockerfile"
        if not dockerfile.is_file():
            raise EnvironmentProblem(f"{dockerfile} is missing; the orderstack image needs it")
        wheels = self._wheels(source) if names.offline else None
        base_identity = names.base
        if names.offline:
            base = self._image(names.base)
            if base is None:
                raise EnvironmentProblem(
                    f"base image {names.base} is missing: run `chaoskit images build --offline`"
                )
            base_identity = f"{names.base}@{base.id}"
        wheel_parts: list[bytes | str] = []
        if wheels is not None:
            for wheel in sorted(wheels.glob("*.whl")):
                wheel_parts += [wheel.name, wheel.read_bytes()]
        inputs = _sha(base_identity, _tree_sha(source), *wheel_parts)
        tag = names.orderstack
        if not force and self._current(tag, inputs):
            return ImageOutcome(image=tag, action="cached", seconds=time.monotonic() - started)
        task = self._task(f"{tag}: build FROM {names.base}")
        with tempfile.TemporaryDirectory(dir=self._cache, prefix="context-") as tmp:
            context = Path(tmp)
            for path in _tree_files(source):
                target = context / path.relative_to(source)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
            # Both modes copy wheels/: empty online, the host-downloaded wheels offline.
            (context / "wheels").mkdir(exist_ok=True)
            if wheels is not None:
                for wheel in wheels.glob("*.whl"):
                    shutil.copy2(wheel, context / "wheels" / wheel.name)
            pip_args = "--no-index --find-links=/build" if names.offline else ""
            old = self._image(tag)
            self._docker_build(
                context,
                tag=tag,
                buildargs={"BASE_IMAGE": names.base, "PIP_ARGS": pip_args},
                labels={LABEL_INPUTS: inputs, LABEL_IMAGE: "orderstack"},
                task=task,
            )
        self._forget(old, tag)
        self._done(task, f"{tag}: built")
        return ImageOutcome(image=tag, action="built", seconds=time.monotonic() - started)

    def _build_toxiproxy(self, tag: str, *, force: bool) -> ImageOutcome:
        started = time.monotonic()
        binary = self._static_toxiproxy()
        inputs = _sha(_TOXIPROXY_DOCKERFILE, binary.read_bytes())
        if not force and self._current(tag, inputs):
            return ImageOutcome(image=tag, action="cached", seconds=time.monotonic() - started)
        task = self._task(f"{tag}: build FROM scratch")
        with tempfile.TemporaryDirectory(dir=self._cache, prefix="context-") as tmp:
            context = Path(tmp)
            (context / "Dockerfile").write_text(_TOXIPROXY_DOCKERFILE, encoding="utf-8")
            shutil.copy2(binary, context / "toxiproxy-server")
            old = self._image(tag)
            self._docker_build(
                context,
                tag=tag,
                buildargs={},
                labels={LABEL_INPUTS: inputs, LABEL_IMAGE: "toxiproxy"},
                task=task,
            )
        self._forget(old, tag)
        self._done(task, f"{tag}: built")
        return ImageOutcome(image=tag, action="built", seconds=time.monotonic() - started)

    def _pull(self, tag: str) -> ImageOutcome:
        started = time.monotonic()
        if self._image(tag) is not None:
            return ImageOutcome(image=tag, action="cached", seconds=time.monotonic() - started)
        task = self._task(f"{tag}: pull")
        try:
            self.client.images.pull(tag)
        except engine_errors() as exc:
            raise EnvironmentProblem(
                f"cannot pull {tag} ({_first_line(exc)}); without a registry run "
                "`chaoskit images build --offline`"
            ) from exc
        self._done(task, f"{tag}: pulled")
        return ImageOutcome(image=tag, action="pulled", seconds=time.monotonic() - started)

    # --- inputs -----------------------------------------------------------------------

    def _wheels(self, source: Path) -> Path:
        """Wheels of orderstack's deps for the container's Python, downloaded on the host."""
        project = tomllib.loads((source / "pyproject.toml").read_text(encoding="utf-8"))
        requirements = [
            *project.get("build-system", {}).get("requires", []),
            *project.get("project", {}).get("dependencies", []),
        ]
        arch = str(self.client.info().get("Architecture", "x86_64"))
        platforms = _PLATFORMS.get(arch)
        if platforms is None:
            raise EnvironmentProblem(f"offline images: no wheel platform known for {arch}")
        key = _sha(json.dumps([requirements, platforms, CONTAINER_PYTHON]))[:16]
        folder = self._cache / "wheels" / key
        if (folder / ".complete").is_file():
            return folder
        task = self._task(f"wheels for Python {CONTAINER_PYTHON}: pip download")
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--disable-pip-version-check",
            "--only-binary=:all:",
            f"--python-version={CONTAINER_PYTHON}",
            "--implementation=cp",
            f"--abi=cp{CONTAINER_PYTHON.replace('.', '')}",
            *(f"--platform={platform}" for platform in platforms),
            "--dest",
            str(folder),
            *requirements,
        ]
        self._run(command, log=self._cache / "pip-download.log", what="pip download")
        (folder / ".complete").write_text("\n".join(requirements) + "\n", encoding="utf-8")
        self._done(task, f"wheels: {len(list(folder.glob('*.whl')))} downloaded")
        return folder

    def _static_toxiproxy(self) -> Path:
        """A statically linked toxiproxy-server (a scratch image has no libc)."""
        binary = chaoskit_home() / "bin" / "toxiproxy-server"
        rebuilt = self._cache / "toxiproxy-server-static"
        for candidate in (binary, rebuilt):
            if candidate.is_file() and _is_static(candidate):
                return candidate
        go = shutil.which("go")
        if go is None:
            raise EnvironmentProblem(
                f"{binary} is missing or not static, and Go is not installed to build a static "
                "one; install Go and run `make setup` again"
            )
        task = self._task("toxiproxy-server: go install with CGO_ENABLED=0")
        with tempfile.TemporaryDirectory(dir=self._cache, prefix="gobin-") as gobin:
            env = {**os.environ, "GOBIN": gobin, "CGO_ENABLED": "0"}
            self._run(
                [go, "install", f"github.com/Shopify/toxiproxy/v2/cmd/server@v{TOXIPROXY_VERSION}"],
                log=self._cache / "go-install.log",
                what="go install toxiproxy",
                env=env,
            )
            shutil.move(str(Path(gobin) / "server"), rebuilt)
        if not _is_static(rebuilt):
            raise EnvironmentProblem(f"{rebuilt} is still dynamically linked after CGO_ENABLED=0")
        self._done(task, "toxiproxy-server: built static")
        return rebuilt

    # --- engine -----------------------------------------------------------------------

    def _image(self, tag: str) -> Any:
        try:
            return self.client.images.get(tag)
        except engine_errors() as exc:
            if is_missing(exc):
                return None
            raise

    def _current(self, tag: str, inputs: str) -> bool:
        image = self._image(tag)
        return image is not None and (image.labels or {}).get(LABEL_INPUTS) == inputs

    def _forget(self, old: Any, tag: str) -> None:
        """Remove the image a rebuild replaced, when nothing else uses it."""
        new = self._image(tag)
        if old is None or new is None or old.id == new.id:
            return
        with contextlib.suppress(*engine_errors()):
            self.client.images.remove(old.id)

    def _docker_build(
        self,
        context: Path,
        *,
        tag: str,
        buildargs: Mapping[str, str],
        labels: Mapping[str, str],
        task: TaskID | None,
    ) -> None:
        tail: list[str] = []
        stream = self.client.api.build(
            path=str(context),
            tag=tag,
            buildargs=dict(buildargs),
            labels=dict(labels),
            rm=True,
            forcerm=True,
            decode=True,
            pull=False,
        )
        for chunk in stream:
            if "error" in chunk:
                error = str(chunk["error"]).strip()
                step = next((line for line in reversed(tail) if line.startswith("Step ")), "")
                hint = ""
                if any(word in error for word in ("registry", "dial tcp", "pull access")):
                    hint = "; without a registry run `chaoskit images build --offline`"
                raise EnvironmentProblem(
                    f"building {tag} failed at {step or 'start'}: {error}{hint}"
                )
            line = str(chunk.get("stream", "")).strip()
            if line:
                tail.append(line)
                del tail[:-20]
                self._describe(task, f"{tag}: {line[:80]}")

    # --- processes and display ----------------------------------------------------------

    def _run(
        self, command: list[str], *, log: Path, what: str, env: Mapping[str, str] | None = None
    ) -> None:
        with log.open("w", encoding="utf-8") as out:
            result = subprocess.run(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=None if env is None else dict(env),
                check=False,
            )
        if result.returncode != 0:
            tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
            raise EnvironmentProblem(
                f"{what} failed (exit {result.returncode}; log {log}): {' | '.join(tail)}"
            )

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """One build at a time per cache (tests and benches may start builds together)."""
        with (self._cache / "build.lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _progress_display(self) -> Iterator[None]:
        if self._console is None:
            yield
            return
        progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=self._console,
            transient=False,
        )
        self._progress = progress
        try:
            with progress:
                yield
        finally:
            self._progress = None

    def _task(self, description: str) -> TaskID | None:
        if self._progress is None:
            return None
        return self._progress.add_task(description, total=1)

    def _describe(self, task: TaskID | None, description: str) -> None:
        if self._progress is not None and task is not None:
            self._progress.update(task, description=description)

    def _done(self, task: TaskID | None, description: str) -> None:
        if self._progress is not None and task is not None:
            self._progress.update(task, description=description, completed=1)


def _is_static(binary: Path) -> bool:
    """True when ``binary`` needs no dynamic loader (checked with `file`, else `ldd`)."""
    file_tool = shutil.which("file")
    if file_tool is not None:
        described = subprocess.run(
            [file_tool, "-b", str(binary)], capture_output=True, text=True, check=False
        ).stdout
        return "statically linked" in described or "static-pie linked" in described
    ldd = shutil.which("ldd")
    if ldd is None:
        return False
    result = subprocess.run([ldd, str(binary)], capture_output=True, text=True, check=False)
    said = result.stdout + result.stderr
    return "not a dynamic executable" in said or "statically linked" in said


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return re.sub(r"\s+", " ", text[0]) if text else type(exc).__name__


def _engine_problem(exc: BaseException) -> EnvironmentProblem:
    """SDK failures during a build: lost engine -> DockerUnavailable, else the engine's word."""
    import docker.errors

    if isinstance(exc, docker.errors.APIError):
        return EnvironmentProblem(f"the Docker engine refused: {_first_line(exc)}")
    return DockerUnavailable(f"lost the Docker engine during the build: {_first_line(exc)}")
