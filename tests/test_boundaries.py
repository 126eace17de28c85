"""The layer boundaries of docs/architecture.md, checked in fresh interpreters."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _modules_after(code: str) -> set[str]:
    script = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    return {m.split(".")[0] for m in json.loads(out.stdout.strip().splitlines()[-1])}


def test_ml_imports_no_service_package() -> None:
    loaded = _modules_after(
        "import ml.datasets, ml.builders, ml.training, ml.inference, ml.explain, ml.heatmap, ml.catalog\n"
        "import ml.architectures.mlp, ml.architectures.cnn"
    )
    assert "tensorflow" in loaded or "keras" in loaded
    assert not loaded & {"flask", "celery", "sqlalchemy", "db", "api", "worker", "kombu", "redis"}


def test_importing_ml_package_does_not_load_tensorflow() -> None:
    loaded = _modules_after("import ml, ml.catalog, ml.datasets, ml.builders")
    assert not loaded & {"tensorflow", "keras"}


def test_api_never_imports_tensorflow() -> None:
    loaded = _modules_after(
        "from tensorq.webapp import make_app\nfrom tensorq.core.settings import Settings\n"
        "make_app(Settings(database_url='sqlite://', broker_url='memory://'))"
    )
    assert "flask" in loaded
    assert not loaded & {"tensorflow", "keras"}


def test_the_api_checks_an_uploaded_model_without_tensorflow(tmp_path: Path) -> None:
    dense = {"module": "keras.layers", "class_name": "Dense", "config": {"units": 3}, "registered_name": None}
    lambda_layer = {"module": "keras.layers", "class_name": "Lambda", "config": {}, "registered_name": None}
    for name, layer in (("plain", dense), ("lambda", lambda_layer)):
        config = {"module": "keras", "class_name": "Sequential", "config": {"layers": [layer]}}
        with zipfile.ZipFile(tmp_path / f"{name}.keras", "w") as archive:
            archive.writestr("config.json", json.dumps(config))
            archive.writestr("metadata.json", json.dumps({"keras_version": "3"}))
            archive.writestr("model.weights.h5", b"")
    loaded = _modules_after(
        "import api.models\nfrom ml.model_archive import check_archive, check_zip, staging_path\n"
        f"folder = {str(tmp_path)!r}\n"
        "staging_path(folder, 'tenant', '6f1c1f0e-3a9a-4d4e-9a43-1d2b3c4d5e6f')\n"
        "check_zip(folder + '/plain.keras'); check_archive(folder + '/plain.keras')\n"
        "try:\n    check_archive(folder + '/lambda.keras')\nexcept Exception as exc:\n    assert 'Lambda' in str(exc)\n"
        "else:\n    raise SystemExit('a Lambda layer passed')"
    )
    assert "ml" in loaded
    assert not loaded & {"tensorflow", "keras"}


def test_the_api_reaches_the_broker_only_through_the_publisher_it_is_given() -> None:
    loaded = _modules_after(
        "from api.app import create_app\nfrom tensorq.core.settings import Settings\n"
        "class Publisher:\n    def ping(self): pass\n"
        "create_app(Settings(database_url='sqlite://', broker_url='memory://'), publisher=Publisher())"
    )
    assert "flask" in loaded
    assert not loaded & {"worker", "celery", "tensorflow", "keras"}


def test_no_module_imports_itself_through_others_at_load_time() -> None:
    from tests.import_graph import circles, graph

    assert circles(graph()) == []


def test_no_import_inside_a_function_closes_a_circle_either() -> None:
    """A lazy import that only breaks a circle hides it: none is left (``python -m tests.import_graph --lazy``)."""
    from tests.import_graph import circles, graph

    assert circles(graph(lazy=True)) == []


def test_worker_parent_never_imports_tensorflow() -> None:
    loaded = _modules_after(
        "from worker.celery_app import make_celery\nimport worker.main, worker.tasks\n"
        "from tensorq.core.settings import Settings\nmake_celery(Settings(broker_url='memory://')).loader.import_default_modules()"
    )
    assert "celery" in loaded
    assert not loaded & {"tensorflow", "keras"}


def test_client_imports_neither_flask_nor_tensorflow() -> None:
    loaded = _modules_after("import tensorq.client")
    assert not loaded & {"flask", "tensorflow", "keras", "celery", "sqlalchemy", "numpy", "db", "api", "worker"}


def test_the_cli_loads_only_the_client_until_a_server_command_runs() -> None:
    loaded = _modules_after("import tensorq.cli, tensorq.cli_jobs, tensorq.cli_catalog")
    assert "rich" in loaded
    assert "httpx" in loaded
    assert not loaded & {"flask", "tensorflow", "keras", "celery", "sqlalchemy", "numpy", "db", "api", "worker"}


def test_no_module_reads_the_environment_but_settings() -> None:
    offenders = []
    for folder in ("api", "db", "ml", "tensorq", "worker", "migrations"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            if ("os.environ" in text or "os.getenv" in text) and path.name not in (
                "settings.py",
                "localstack.py",
                "gpu.py",
                "gpu_check.py",  # sets CUDA_VISIBLE_DEVICES for the TensorFlow probe it starts, reads no setting
            ):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


PROJECT = ("api", "db", "ml", "worker", "tensorq", "bench", "migrations")


def _in_ground(module: str) -> bool:
    return module == "tensorq.core" or module.startswith("tensorq.core.")


def test_the_ground_imports_nothing_else_of_the_project() -> None:
    from tests.import_graph import graph

    edges = graph(lazy=True)  # imports inside functions too
    ground = sorted(m for m in edges if _in_ground(m))
    assert "tensorq.core.settings" in ground
    assert {m: sorted(d for d in edges[m] if not _in_ground(d)) for m in ground if edges[m] - set(ground)} == {}
    script = f"import sys, json\nimport {', '.join(ground)}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = {m for m in json.loads(out.stdout.strip().splitlines()[-1]) if m.split(".")[0] in PROJECT}
    assert loaded - {"tensorq"} == {m for m in loaded if _in_ground(m)}  # tensorq/__init__ only re-exports


def test_below_the_top_nothing_imports_tensorqs_top() -> None:
    from tests.import_graph import graph

    edges = graph(lazy=True)
    below = ("api", "db", "ml", "worker", "migrations")
    found = {
        m: sorted(d for d in ds if d.split(".")[0] == "tensorq" and not _in_ground(d))
        for m, ds in edges.items()
        if m.split(".")[0] in below
    }
    assert {m: ds for m, ds in found.items() if ds} == {}


def test_no_package_imports_another_back_at_load_time() -> None:
    from tests.import_graph import circles, graph, package_edges

    assert circles(package_edges(graph())) == []
