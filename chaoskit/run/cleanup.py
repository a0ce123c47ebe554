"""Undo what runs left behind (a SIGKILLed run, a crashed host), and nothing else.

Only toxics whose name carries a chaoskit run id are ever removed, and only for runs
that are no longer alive: another team's toxics and a run in progress are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from chaoskit.errors import ChaoskitError, ToxiproxyError
from chaoskit.faults.domain import AdminClient
from chaoskit.faults.toxiproxy import (
    Proxy,
    ToxiproxyClient,
    is_chaoskit_toxic,
    parse_toxic_name,
)
from chaoskit.run.registry import RunRecord, RunRegistry

__all__ = ["CleanupReport", "cleanup"]


@dataclass
class CleanupReport:
    """What cleanup removed, restored, left alone, and could not undo."""

    toxics_removed: list[str] = field(default_factory=list)
    proxies_enabled: list[str] = field(default_factory=list)
    settings_restored: list[str] = field(default_factory=list)
    containers_restored: list[str] = field(default_factory=list)
    runs_forgotten: list[str] = field(default_factory=list)
    live_runs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def nothing_to_do(self) -> bool:
        """True when there was nothing left behind."""
        return not (
            self.toxics_removed
            or self.proxies_enabled
            or self.settings_restored
            or self.containers_restored
            or self.runs_forgotten
            or self.errors
        )


def cleanup(
    *,
    state_dir: Path,
    toxiproxy_urls: list[str],
    run_id: str | None = None,
    target: str | None = None,
    force: bool = False,
) -> CleanupReport:
    """Undo leftovers of dead runs (or only of ``run_id``) recorded under ``state_dir``, and
    remove chaoskit toxics of dead runs found on ``toxiproxy_urls``.

    ``target`` keeps to the records of runs on that target (by name). ``force`` undoes
    ``run_id`` even though its process is alive: the watchdog's case, a hung driver.
    """
    if force and run_id is None:
        raise ValueError("force needs a run_id: only one named run may be undone while alive")
    registry = RunRegistry(state_dir)
    report = CleanupReport()
    live: set[str] = set()
    urls = list(dict.fromkeys(toxiproxy_urls))
    for record in registry.records():
        if record.alive() and not (force and record.run_id == run_id):
            live.add(record.run_id)
            report.live_runs.append(record.run_id)
            continue
        if run_id is not None and record.run_id != run_id:
            continue
        if target is not None and record.target != target:
            continue
        _undo_record(record, report)
        urls.extend(u for u in record.toxiproxy_urls if u not in urls)
        if not report.errors:
            registry.forget(record.run_id)
            report.runs_forgotten.append(record.run_id)
    for url in urls:
        _sweep_toxics(url, live=live, only_run=run_id, report=report)
    return report


def _undo_record(record: RunRecord, report: CleanupReport) -> None:
    clients: dict[str, ToxiproxyClient] = {}
    try:
        # Only what is really there is undone and reported: a record may outlive its stack
        # (a forced `down`, a fresh `up`), and "removed" must never name a thing that was not.
        for entry in record.disabled_proxies:
            client = clients.setdefault(entry["api_url"], ToxiproxyClient(entry["api_url"]))
            try:
                proxy = _proxy_or_none(client, entry["proxy"])
                if proxy is not None and not proxy.enabled:
                    client.set_enabled(entry["proxy"], True)
                    report.proxies_enabled.append(f"{entry['proxy']} ({entry['api_url']})")
            except ChaoskitError as exc:
                report.errors.append(f"proxy {entry['proxy']}: {exc}")
        for entry in record.toxics:
            client = clients.setdefault(entry["api_url"], ToxiproxyClient(entry["api_url"]))
            try:
                proxy = _proxy_or_none(client, entry["proxy"])
                if proxy is not None and any(t.name == entry["name"] for t in proxy.toxics):
                    client.remove_toxic(entry["proxy"], entry["name"], missing_ok=True)
                    report.toxics_removed.append(f"{entry['proxy']}/{entry['name']}")
            except ChaoskitError as exc:
                report.errors.append(f"toxic {entry['name']}: {exc}")
    finally:
        for client in clients.values():
            client.close()
    for service, entry in record.restore.items():
        admin = AdminClient({service: entry["url"]})
        try:
            settings = cast(dict[str, Any], entry.get("settings") or {})
            current = admin.get(service)
            changed = {k: v for k, v in settings.items() if current.get(k) != v}
            if changed:
                admin.set(service, changed)
                report.settings_restored.append(service)
        except ChaoskitError as exc:
            report.errors.append(f"settings of {service}: {exc}")
        finally:
            admin.close()
    for entry in record.containers:
        try:
            from chaoskit.faults.container import undo_recorded  # docker SDK only when needed

            undo_recorded(entry)
            report.containers_restored.append(f"{entry['kind']} {entry['container']}")
        except (ChaoskitError, ImportError) as exc:
            report.errors.append(f"container {entry.get('container')}: {exc}")


def _proxy_or_none(client: ToxiproxyClient, name: str) -> Proxy | None:
    """The proxy called ``name``, or None when this Toxiproxy has none by that name."""
    try:
        return client.proxy(name)
    except ToxiproxyError as exc:
        if exc.status == 404:
            return None
        raise


def _sweep_toxics(url: str, *, live: set[str], only_run: str | None, report: CleanupReport) -> None:
    client = ToxiproxyClient(url)
    try:
        try:
            proxies = client.proxies()
        except ChaoskitError as exc:
            report.errors.append(f"Toxiproxy {url}: {exc}")
            return
        for proxy in proxies.values():
            # A disabled proxy is re-enabled only from a run record that says chaoskit did it.
            for toxic in client.toxics(proxy.name):
                if not is_chaoskit_toxic(toxic.name):
                    continue
                parsed = parse_toxic_name(toxic.name)
                owner = parsed.run_id if parsed is not None else ""
                if owner in live or (only_run is not None and owner != only_run):
                    continue
                try:
                    client.remove_toxic(proxy.name, toxic.name, missing_ok=True)
                    label = f"{proxy.name}/{toxic.name}"
                    if label not in report.toxics_removed:
                        report.toxics_removed.append(label)
                except ChaoskitError as exc:
                    report.errors.append(f"toxic {toxic.name}: {exc}")
    finally:
        client.close()
