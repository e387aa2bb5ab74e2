"""Turning a `JobSpec` into an AzureML `ScriptRunConfig`, and the snapshot's `.amlignore`."""

from __future__ import annotations

import contextlib
import shlex
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from himl_tasks.job_spec import JobSpec
from himl_tasks.job_variables import AZUREML_V1_IN_JOB, IN_JOB, RESUME_FROM
from himl_tasks.secret_reference import plain_values
from himl_tasks.snapshot import IGNORE_FILE, Snapshot

BACKUP_SUFFIX = ".himl-original"
OUTPUTS_TAG = "himl_outputs"
_HEADER = (
    "# Written by himl-tasks for one submission; your own .amlignore (if any) is put back\n"
    "# when the submission ends.\n"
)


@contextlib.contextmanager
def amlignore_for_submission(root: Path, rules: Sequence[str]) -> Iterator[Path]:
    """Makes `root/.amlignore` hold `rules` while the snapshot is taken, then restores it.

    The user's file comes back byte for byte with its permissions, or is removed again if
    there was none, also when the submission fails. A copy is kept beside it meanwhile, so a
    submission killed half-way is repaired by the next one.
    """
    path = root / IGNORE_FILE
    backup = root / (IGNORE_FILE + BACKUP_SUFFIX)
    if backup.exists():  # an earlier submission died before it could restore the file
        backup.replace(path)
    original = path.read_bytes() if path.exists() else None
    if original is not None:
        mode = path.stat().st_mode
        backup.write_bytes(original)
        backup.chmod(mode)
    lines = [*rules, f"/{IGNORE_FILE}{BACKUP_SUFFIX}"]
    path.write_text(_HEADER + "\n".join(lines) + "\n", encoding="utf-8")
    try:
        yield path
    finally:
        if original is None:
            path.unlink(missing_ok=True)
        else:
            backup.replace(path)


def default_tags(spec: JobSpec, argv: Sequence[str] | None = None) -> dict[str, str]:
    """The run's tags: the command line, the priority and resume-from, then the spec's own."""
    tags = {"commandline": shlex.join(sys.argv if argv is None else argv)}
    tags["priority"] = spec.priority.value
    if spec.resume_from:
        tags["resume_from"] = spec.resume_from
    if spec.output_datasets:
        tags[OUTPUTS_TAG] = ",".join(config.name for config in spec.output_datasets)
    return {**tags, **spec.tags}


def script_run_config(
    spec: JobSpec,
    snapshot: Snapshot,
    *,
    environment: Any,
    compute: str,
    inputs: Sequence[Any] = (),
    outputs: Sequence[Any] = (),
    environment_variables: Mapping[str, str] | None = None,
) -> Any:
    """The `ScriptRunConfig` for a job.

    It holds the snapshot, script or module, arguments, compute, nodes, duration, the
    environment and its variables, and the datasets in and out.

    Raises:
        InvalidInputError: If the script is missing, outside the snapshot or excluded from it.
    """
    from azureml.core import ScriptRunConfig
    from azureml.core.runconfig import DockerConfiguration, PyTorchConfiguration

    processes = spec.num_nodes * spec.processes_per_node
    distributed = (
        PyTorchConfiguration(process_count=processes, node_count=spec.num_nodes)
        if processes > 1
        else None
    )
    seconds = spec.max_run_duration
    common: dict[str, Any] = {
        "source_directory": str(spec.snapshot_root),
        "compute_target": compute,
        "environment": environment,
        "distributed_job_config": distributed,
        "docker_runtime_config": DockerConfiguration(
            use_docker=True, shm_size=spec.docker_shm_size or None
        ),
        "max_run_duration_seconds": None if seconds is None else round(seconds),
    }
    if spec.module is not None:
        command = ["python", "-m", spec.module, *spec.args]
        config = ScriptRunConfig(command=command, **common)
    else:
        assert spec.entry_script is not None
        script = snapshot.entry_script(spec.entry_script)
        config = ScriptRunConfig(script=script, arguments=list(spec.args), **common)
    run_config = config.run_config
    variables = dict(environment_variables or plain_values(spec.environment_variables))
    variables[IN_JOB] = AZUREML_V1_IN_JOB  # how the job's runtime finds its in-job half
    if spec.resume_from:
        variables[RESUME_FROM] = spec.resume_from
    run_config.environment_variables = variables
    if inputs or outputs:
        run_config.data = {item.name: item for item in inputs}
        run_config.output_data = {item.name: item for item in outputs}
    return config
