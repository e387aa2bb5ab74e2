"""The package's public surface and its import cost."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import himl_tasks
from himl_tasks.runtime.in_job_platform import InJobPlatform

PUBLIC = [
    "AzureMLLogger",
    "AzureMLV1Backend",
    "AzureMLV2Backend",
    "AzureRunInfo",
    "BanditPolicy",
    "BlobDatastore",
    "ChecksumMismatchError",
    "Choice",
    "ComputeNotFoundError",
    "ConfigurationError",
    "ContainerNotFoundError",
    "DatasetConfig",
    "DatasetNotFoundError",
    "Datastore",
    "DatastoreNotFoundError",
    "FailureKind",
    "HimlError",
    "InputPathNotFoundError",
    "InvalidInputError",
    "JobFailedError",
    "JobSpec",
    "JobTimeoutError",
    "LocalBackend",
    "LocalDatastore",
    "LocalFileError",
    "LocalFileNotFoundError",
    "LocalIsADirectoryError",
    "LocalNotADirectoryError",
    "LocalPermissionError",
    "LocalWorkspaceConfig",
    "LogUniform",
    "MedianStoppingPolicy",
    "Metric",
    "NotSupportedError",
    "PipelineNotFoundError",
    "PipelineSchedule",
    "PipelineSpec",
    "PipelineStep",
    "Preemption",
    "PreemptionMode",
    "Priority",
    "PublishedPipeline",
    "RUN_CONTEXT",
    "RUN_RECOVERY_FILE",
    "RemoteFile",
    "RemoteFileChangedError",
    "RemoteFilesNotFoundError",
    "ResolvedDataset",
    "RunNotFoundError",
    "RunPlan",
    "RunRef",
    "RunState",
    "RunStatus",
    "SecretReference",
    "SnapshotTooLargeError",
    "SourceChangedError",
    "StepRun",
    "StorageAccessError",
    "StorageError",
    "SweepSpec",
    "TransferFailedError",
    "TransferReport",
    "TruncationSelectionPolicy",
    "Uniform",
    "UnsafeBlobNameError",
    "UnusableNamesError",
    "WorkspaceNotFoundError",
    "create_run_configuration",
    "create_script_run",
    "cross_validation",
    "download_checkpoints",
    "download_checkpoints_from_run_id",
    "download_files_from_run_id",
    "download_from_datastore",
    "fetch_run",
    "get_most_recent_run",
    "get_run_info",
    "get_workspace",
    "is_running_in_azure_ml",
    "log_learning_rate",
    "log_on_epoch",
    "resolve_backend",
    "set_environment_variables_for_multi_node",
    "split_recovery_id",
    "submit_run",
    "submit_to_azure_if_needed",
    "torch_barrier",
    "upload_to_datastore",
]


def test_public_names_are_pinned_and_all_resolve() -> None:
    # The names come from himl_tasks/__init__.pyi, the one list; this pins it.
    assert himl_tasks.__all__ == PUBLIC
    assert dir(himl_tasks) == PUBLIC
    for name in PUBLIC:
        if name == "RUN_RECOVERY_FILE":  # hi-ml's file name, text
            assert getattr(himl_tasks, name) == "most_recent_run.txt"
        elif name.isupper():  # a constant: hi-ml's RUN_CONTEXT is an object, not a class
            assert type(getattr(himl_tasks, name)).__module__.startswith("himl_tasks.")
        else:
            assert getattr(himl_tasks, name).__name__ == name


HIML_PUBLIC = [
    "LOCAL_FLAG",
    "RUN_CONTEXT",
    "RUN_RECOVERY_FILE",
    "AzureMLLogger",
    "AzureRunInfo",
    "DatasetConfig",
    "create_run_configuration",
    "create_script_run",
    "download_checkpoints_from_run_id",
    "download_files_from_run_id",
    "download_from_datastore",
    "fetch_run",
    "get_most_recent_run",
    "get_workspace",
    "is_running_in_azure_ml",
    "log_learning_rate",
    "log_on_epoch",
    "resolve_backend",
    "run_object",
    "set_environment_variables_for_multi_node",
    "split_recovery_id",
    "submit_run",
    "submit_to_azure_if_needed",
    "torch_barrier",
    "upload_to_datastore",
]
# Names of himl_tasks.himl that are this project's, not hi-ml's: not at the top level.
HIML_ONLY = {"LOCAL_FLAG", "run_object"}


def test_hi_ml_s_names_are_pinned_and_the_same_objects_at_the_top_level() -> None:
    # A hi-ml script changes one import line: `from health_azure import DatasetConfig, ...`
    # becomes `from himl_tasks import ...` or `from himl_tasks.himl import ...`, either one.
    import himl_tasks.himl

    assert himl_tasks.himl.__all__ == HIML_PUBLIC
    for name in sorted(set(HIML_PUBLIC) - HIML_ONLY):
        assert getattr(himl_tasks.himl, name) is getattr(himl_tasks, name), name


def test_an_unknown_name_is_an_attribute_error() -> None:
    # hasattr() and `from himl_tasks import X` rely on AttributeError, not another exception.
    assert not hasattr(himl_tasks, "LocalBackends")


LIGHTNING_PACKAGES = {"pytorch_lightning", "lightning", "lightning_fabric", "torchmetrics"}


def test_importing_the_package_loads_no_heavy_dependency() -> None:
    loaded = _loaded("import himl_tasks")
    heavy = {"azureml", "azure", "aiohttp", "prefect", "torch", "rich"} | LIGHTNING_PACKAGES
    assert _of_packages(loaded, heavy) == []


def test_a_plain_run_of_a_hi_ml_script_loads_no_backend_sdk_nor_blob_client(
    tmp_path: Path,
) -> None:
    # `python script.py` with the door and no flag runs the script here: it pays for the call,
    # not for AzureML's backend, its blob client (aiohttp, about 0.2 s) or Lightning.
    script = (
        "import os, sys; os.chdir(sys.argv[1]); "
        "from himl_tasks import submit_to_azure_if_needed; "
        "info = submit_to_azure_if_needed(); assert info.output_folder.is_dir()"
    )
    loaded = _loaded(script, str(tmp_path))
    heavy = {"azureml", "azure", "aiohttp", "prefect", "torch"} | LIGHTNING_PACKAGES
    assert _of_packages(loaded, heavy) == []
    assert "himl_tasks.backends.azureml_v1.backend" not in loaded


def test_lightning_is_imported_only_when_a_lightning_name_is_used() -> None:
    # Lightning's import takes seconds: RUN_CONTEXT and himl_tasks.himl must not pay for it.
    probe = (
        "import sys, himl_tasks, himl_tasks.himl; from himl_tasks import RUN_CONTEXT; "
        "from himl_tasks.himl import RUN_CONTEXT as again; RUN_CONTEXT.id; "
        f"before = sorted({{m.split('.')[0] for m in sys.modules}} & {LIGHTNING_PACKAGES!r}); "
        "from himl_tasks import AzureMLLogger; from himl_tasks.himl import log_on_epoch; "
        "print(before, 'pytorch_lightning' in sys.modules)"
    )
    output = _probe(probe)
    assert output.strip() == "[] True"


def test_run_context_is_light_to_import_in_a_job() -> None:
    # A job's script imports RUN_CONTEXT to log: it is the in-job API's, not the door's, so it
    # loads neither the storage engine's HTTP client nor an Azure SDK.
    loaded = _loaded("from himl_tasks import RUN_CONTEXT; RUN_CONTEXT.id")
    assert _of_packages(loaded, {"aiohttp", "azure", "azureml"}) == []


def test_the_azureml_backend_imports_azureml_only_when_used() -> None:
    loaded = _loaded(
        "import himl_tasks; from himl_tasks import AzureMLV1Backend, get_workspace, "
        "SweepSpec, download_checkpoints"
    )
    assert _of_packages(loaded, {"azureml"}) == []


def test_the_azureml_v2_backend_imports_azure_ai_ml_and_mlflow_only_when_used() -> None:
    # `import azure.ai.ml` takes seconds and mlflow more: naming the v2 backend loads neither.
    loaded = _loaded(
        "import himl_tasks, himl_tasks.backends.azureml_v2; from himl_tasks import AzureMLV2Backend"
    )
    assert [m for m in loaded if m.startswith("azure.ai.ml")] == []
    assert _of_packages(loaded, {"mlflow", "marshmallow"}) == []


def _probe(code: str, *args: str) -> str:
    """What a fresh interpreter prints running `code` (sys.argv[1:] = `args`): imports measured
    from nothing."""
    return subprocess.run(
        [sys.executable, "-c", code, *args], check=True, capture_output=True, text=True, timeout=120
    ).stdout


def _loaded(code: str, *args: str) -> list[str]:
    """The modules a fresh interpreter has loaded once it has run `code`."""
    report = "\nimport json, sys; print(json.dumps(sorted(sys.modules)))"
    return list(json.loads(_probe(code + report, *args)))


def _of_packages(modules: list[str], packages: set[str]) -> list[str]:
    """The modules that belong to one of the top-level `packages`."""
    return [m for m in modules if m.split(".")[0] in packages]


def test_no_two_modules_define_one_public_name() -> None:
    # One name, one meaning (DESIGN.md): a module-level function, class or type alias of
    # himl_tasks is defined once, so `download_run_files` cannot be a Prefect task in one
    # module and a helper with other arguments in another. The in-job halves share the names
    # of `InJobPlatform` on purpose (a backend's `in_job.py` is looked up by them), and a
    # process's entry point is `main`.
    shared_on_purpose = {name for name in vars(InJobPlatform) if not name.startswith("_")}
    shared_on_purpose.add("main")
    twice = {
        name: paths
        for name, paths in _where_defined(_defined_names).items()
        if len(paths) > 1 and not name.startswith("_") and name not in shared_on_purpose
    }
    assert twice == {}


def test_no_two_modules_define_one_named_text() -> None:
    # A name (a flag, a tag, a file's name, hi-ml's default variables) written out in two
    # modules is a copy that drifts, or one constant name with two meanings (OUTPUT_FOLDER the
    # variable's name in one module, the folder's in another). Numbers may repeat: a module's
    # own timings (POLL_SECONDS) are its own.
    where = _where_defined(_defined_constants)
    assert {name: paths for name, paths in where.items() if len(paths) > 1} == {}


def _where_defined(names: Callable[[ast.stmt], list[str]]) -> dict[str, list[str]]:
    """{name: the modules of himl_tasks whose top-level statements define it, by `names`}."""
    where: dict[str, list[str]] = {}
    package = Path(himl_tasks.__file__).parent
    for path in sorted(package.rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            for name in names(node):
                where.setdefault(name, []).append(str(path.relative_to(package)))
    return where


def _defined_constants(node: ast.stmt) -> list[str]:
    """The named texts a statement defines: UPPER_CASE names given a str, dict, tuple or list."""
    value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
    if not isinstance(value, ast.Constant | ast.Dict | ast.Tuple | ast.List):
        return []
    if isinstance(value, ast.Constant) and not isinstance(value.value, str):
        return []
    targets = node.targets if isinstance(node, ast.Assign) else []
    if isinstance(node, ast.AnnAssign):
        targets = [node.target]
    # A private constant (`_SCHEMA`) is its module's own.
    names = [t.id for t in targets if isinstance(t, ast.Name)]
    return [name for name in names if name.isupper() and not name.startswith("_")]


def _defined_names(node: ast.stmt) -> list[str]:
    """The functions, classes and type names (`Name = A | B`, TypeVars) a statement defines."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    targets = node.targets if isinstance(node, ast.Assign) else []
    if isinstance(node, ast.AnnAssign):
        targets = [node.target]
    names = [target.id for target in targets if isinstance(target, ast.Name)]
    # CamelCase names: constants (UPPER_CASE) and one-letter type variables may repeat.
    return [name for name in names if name[0].isupper() and not name.isupper()]


def test_the_built_package_says_it_is_typed(tmp_path: Path) -> None:
    # Without py.typed, mypy ignores an installed package's types: a user's code that uses
    # JobSpec is not checked against it (PEP 561).
    import shutil
    import zipfile

    root, source = Path(__file__).parents[1], tmp_path / "source"
    # Built from a copy: a build leaves build/ and egg-info folders where it runs.
    shutil.copytree(root / "himl_tasks", source / "himl_tasks",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "wheel"), str(source)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = (tmp_path / "wheel").glob("himl_tasks-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "himl_tasks/py.typed" in names and "himl_tasks/__init__.pyi" in names


def test_finding_a_v2_workspace_imports_azure_ai_ml_only_when_a_client_is_built() -> None:
    # The door, the command line and the block reach SDK v2's workspace search; importing
    # them, or the search's own modules, must not pay for azure-ai-ml (seconds) or
    # azure-identity.
    loaded = _loaded(
        "import himl_tasks, himl_tasks.himl, himl_tasks.cli.app, himl_tasks.prefect.blocks; "
        "import himl_tasks.backends.azureml_v2.workspace, "
        "himl_tasks.backends.azureml_v2.authentication"
    )
    assert [m for m in loaded if m.startswith(("azure.ai.ml", "azure.identity"))] == []
