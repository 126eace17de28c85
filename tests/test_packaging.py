"""The distribution's extras: a base install without servers or TensorFlow, and commands that name their extra."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
SERVER_PACKAGES = {"tensorflow", "tensorflow-cpu", "keras", "sqlalchemy", "flask", "celery", "kombu", "gunicorn"}


@pytest.fixture(scope="module")
def requirements(tmp_path_factory: pytest.TempPathFactory) -> list[Requirement]:
    """Requires-Dist of the package metadata built from pyproject.toml (pip's PEP 517 build, isolated)."""
    folder = tmp_path_factory.mktemp("metadata")
    project = folder / "project"  # a copy, so the build leaves no egg-info in the checkout
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project / name)
    report = folder / "report.json"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--dry-run", "--ignore-installed", "--no-deps"]
        + ["--report", str(report), str(project)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    (installed,) = json.loads(report.read_text())["install"]
    assert installed["metadata"]["name"] == "tensorq"
    return [Requirement(line) for line in installed["metadata"]["requires_dist"]]


def _norm(name: str) -> str:
    """A distribution name in its normalised form (PEP 503)."""
    return name.lower().replace("_", "-").replace(".", "-")


def _names(requirements: list[Requirement], extra: str | None) -> set[str]:
    """Distribution names required by the base install (extra None) or by one extra, without expanding."""
    names = set()
    for req in requirements:
        in_base = req.marker is None
        if (extra is None and in_base) or (extra is not None and req.marker and req.marker.evaluate({"extra": extra})):
            names.add(_norm(req.name))
    return names


def test_base_install_names_no_server_or_tensorflow(requirements: list[Requirement]) -> None:
    base = _names(requirements, None)
    assert {"httpx", "click", "pydantic", "pydantic-settings"} <= base
    assert not base & SERVER_PACKAGES, base & SERVER_PACKAGES


def test_extras_split_the_servers(requirements: list[Requirement]) -> None:
    api = _names(requirements, "api")
    assert {"flask", "sqlalchemy", "celery", "gunicorn", "limits", "flask-cors", "flask-swagger-ui"} <= api
    assert not api & {"tensorflow", "tensorflow-cpu", "keras"}
    assert "tensorflow" in _names(requirements, "worker")
    assert "tensorflow-cpu" in _names(requirements, "worker-cpu")
    assert "tensorflow" in _names(requirements, "gpu")
    assert "docker" in _names(requirements, "autoscale")
    assert {"tensorq"} <= _names(requirements, "all")


def _third_party_imports(folders: tuple[str, ...]) -> set[str]:
    """Top-level modules imported anywhere in ``folders`` that are neither the project's nor the stdlib's."""
    own = {"api", "db", "ml", "tensorq", "worker", "migrations", "bench"}
    found = set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    found |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    found.add(node.module.split(".")[0])
    return {name for name in found if name not in own and name not in sys.stdlib_module_names}


def _closure(names: set[str]) -> set[str]:
    """``names`` and everything they require, read from the installed distributions' metadata."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = _norm(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for line in requires:
            req = Requirement(line)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in req.extras | {"redis", ""}):
                todo.append(req.name)
    return seen


def test_the_api_extra_covers_every_module_the_api_imports(requirements: list[Requirement]) -> None:
    """The API image installs [api]: every module api/ and db/ import must come with it (no drifting list)."""
    provided = _closure(_names(requirements, None) | _names(requirements, "api"))
    distributions = importlib.metadata.packages_distributions()
    modules = _third_party_imports(("api", "db", "migrations"))
    # ml/ is imported by the API only for its TensorFlow-free catalog and zip checks.
    modules -= {"tensorflow", "keras"}
    missing = {m for m in modules if not {_norm(d) for d in distributions.get(m, [m])} & provided}
    assert not missing, f"imported by api/ or db/ but not in [api]: {sorted(missing)}"


BLOCKER = """
import importlib.abc, sys
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Blocker())
"""


def _run_without(blocked: set[str], code: str) -> subprocess.CompletedProcess[str]:
    script = BLOCKER.format(blocked=sorted(blocked)) + code
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_client_and_cli_import_with_only_the_base_install() -> None:
    done = _run_without(
        {"tensorflow", "keras", "flask", "sqlalchemy", "celery", "kombu", "gunicorn", "docker", "numpy"},
        "import json, tensorq.client, tensorq.cli\nprint(json.dumps(sorted(sys.modules)))",
    )
    assert done.returncode == 0, done.stderr
    loaded = {m.split(".")[0] for m in json.loads(done.stdout.strip().splitlines()[-1])}
    assert not loaded & {"tensorflow", "flask", "sqlalchemy", "celery"}


@pytest.mark.parametrize(
    ("argv", "extra", "blocked"),
    [
        (["api"], "api", {"flask", "gunicorn"}),
        (["migrate"], "api", {"sqlalchemy", "alembic"}),
        (["worker", "--gpu", "none"], "worker", {"tensorflow"}),
        (["autoscale"], "autoscale", {"docker"}),
    ],
)
def test_server_commands_name_the_extra_they_need(argv: list[str], extra: str, blocked: set[str]) -> None:
    code = f"from tensorq.cli import main\nmain({argv!r}, prog_name='tensorq')"
    done = _run_without(blocked, code)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert f"pip install 'tensorq[{extra}]'" in done.stderr
    assert "Traceback" not in done.stderr
