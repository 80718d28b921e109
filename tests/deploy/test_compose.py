"""docker-compose.yml is a valid Compose file that runs every process of the product."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def compose_command() -> list[str] | None:
    """`docker compose` (v2 plugin) where it is installed, else `docker-compose`."""
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy is not None else None


def test_compose_file_validates(tmp_path: Path) -> None:
    """`docker compose config` accepts the file, with the observability profile too."""
    command = compose_command()
    if command is None:
        pytest.skip("no docker compose client installed (neither the plugin nor docker-compose)")
    # Validated in a copy, with .env.example as the .env an operator would create.
    shutil.copy(REPO / "docker-compose.yml", tmp_path / "docker-compose.yml")
    shutil.copy(REPO / ".env.example", tmp_path / ".env")
    result = subprocess.run(
        [*command, "--profile", "observability", "config", "--services"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    services = set(result.stdout.split())
    assert {"postgres", "redis", "migrate", "serve", "worker", "smtp"} <= services
    assert {"prometheus", "grafana"} <= services


def test_every_long_running_process_has_a_health_check() -> None:
    """serve (from the Dockerfile), worker and smtp (their metrics ports) are health-checked."""
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert "HEALTHCHECK" in (REPO / "Dockerfile").read_text()
    for name in ("worker", "smtp"):
        assert "/metrics" in " ".join(services[name]["healthcheck"]["test"]), name


def test_prometheus_and_grafana_only_run_with_their_profile() -> None:
    """A plain `docker compose up` starts the product alone."""
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    assert services["prometheus"]["profiles"] == ["observability"]
    assert services["grafana"]["profiles"] == ["observability"]
    assert all("profiles" not in services[name] for name in ("serve", "worker", "smtp"))


def test_files_mounted_into_the_observability_services_exist() -> None:
    """Every file or folder the compose file mounts from deploy/ is in the repository."""
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    for name in ("prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), source
