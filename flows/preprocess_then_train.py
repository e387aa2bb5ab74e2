"""The preprocess-then-train flow: from raw digits to a trained model, through two jobs.

Raw digits -> preprocessing job -> new features dataset version -> training job on that
version -> best checkpoint and metrics.

Prefect chains the two jobs (submit one, wait, submit the next), or, with
`native_pipeline=True`, the backend does: one pipeline run whose two steps hand the features
on (`himl_tasks.prefect.run_pipeline`).

Run it through its deployment (`prefect deployment run preprocess-then-train/local`, or
`preprocess-then-train/native-pipeline`), or directly: `python -m flows.preprocess_then_train`.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.variables import Variable

from himl_tasks import DatasetConfig, JobSpec, PipelineSpec, PipelineStep, Priority
from himl_tasks.errors import InvalidInputError
from himl_tasks.prefect import (
    backend_for,
    cancel_started_jobs,
    download_run_files,
    ensure_dataset,
    forget_started_jobs,
    run_job,
    run_pipeline,
    upload_folder_to_datastore,
)
from himl_tasks.runs import Metric, RunRef

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RESULT_ARTIFACT = "preprocess-then-train-result"
RAW_FILE = "digits.csv"
PIPELINE_NAME = "preprocess-then-train"


@task(cache_policy=NO_CACHE)
def export_digits(folder: Path) -> Path:
    """Writes scikit-learn's handwritten digits (1,797 images of 8x8 pixels) as a CSV file.

    The data is read from the file scikit-learn ships (`sklearn/datasets/data/digits.csv.gz`)
    without importing scikit-learn, which would take seconds in every flow run; where that file
    is missing, `sklearn.datasets.load_digits` is used.
    """
    import gzip
    import importlib.util

    import numpy as np

    spec = importlib.util.find_spec("sklearn")
    locations = list(spec.submodule_search_locations or []) if spec else []
    shipped = [Path(p) / "datasets" / "data" / "digits.csv.gz" for p in locations]
    if shipped and shipped[0].is_file():
        with gzip.open(shipped[0], "rt") as source:
            rows = np.loadtxt(source, delimiter=",", dtype=np.int64)
    else:
        from sklearn.datasets import load_digits

        digits = load_digits()
        rows = np.column_stack([digits.data.astype(np.int64), digits.target])
    folder.mkdir(parents=True, exist_ok=True)
    header = ",".join([f"pixel_{i}" for i in range(rows.shape[1] - 1)] + ["label"])
    np.savetxt(folder / RAW_FILE, rows, fmt="%d", delimiter=",", header=header, comments="")
    return folder


def last_trained_variable(workspace_block: str, raw_dataset: str) -> str:
    """The Prefect variable holding the raw dataset version last trained on successfully."""
    cleaned = "".join(c if c.isalnum() else "-" for c in f"{workspace_block}-{raw_dataset}")
    return f"himl-last-trained-{cleaned.lower()}"[:255]


@flow(
    name="preprocess-then-train",
    log_prints=True,
    on_cancellation=[cancel_started_jobs],
    on_crashed=[cancel_started_jobs],
    on_failure=[cancel_started_jobs],
    on_completion=[forget_started_jobs],
)
def preprocess_then_train(
    workspace_block: str = "local-workspace/demo",
    preprocess_compute: str = "",
    train_compute: str = "",
    raw_dataset: str = "digits_raw",
    features_dataset: str = "digits_features",
    epochs: int = 12,
    learning_rate: float = 0.01,
    low_priority: bool = False,
    max_retries: int = 2,
    retry_delay_seconds: float = 5.0,
    skip_if_unchanged: bool = False,
    epoch_seconds: float = 0.0,
    resume: bool = True,
    results_folder: str = "",
    native_pipeline: bool = False,
) -> dict[str, Any]:
    """Preprocesses the raw digits into a new features dataset version and trains on it.

    Args:
        workspace_block: The saved workspace block, e.g. "local-workspace/demo".
        preprocess_compute: The (CPU) cluster for preprocessing ("" for the local default).
        train_compute: The (GPU) cluster for training ("" for the local default).
        raw_dataset: The raw data's dataset (uploaded and created when missing).
        features_dataset: The dataset the preprocessing job writes, a new version per run.
        epochs: Training epochs.
        learning_rate: The optimiser's learning rate.
        low_priority: Train on low-priority machines (preemptible; retried with resume).
        max_retries: Resubmissions of a preempted job.
        retry_delay_seconds: The pause before the first resubmission.
        skip_if_unchanged: Stop early when the raw dataset's version is the one the last
            successful training used (for scheduled retraining).
        epoch_seconds: A pause per training epoch (to make preemption visible in demos).
        resume: A resubmitted training job resumes from its latest recovery checkpoint
            (False: it starts again from scratch, for comparison).
        results_folder: Where the best checkpoint and metrics land (default: a temporary one).
        native_pipeline: Run the two jobs as ONE pipeline of the backend (an AzureML pipeline
            run with two steps; on the local backend a pipeline run with two child runs),
            which hands the features on and reuses an unchanged step, instead of Prefect
            chaining two jobs. A preempted training step is resumed by resubmitting the
            pipeline.

    Returns:
        Dataset versions, run ids, metrics, and where the checkpoint is.

    Raises:
        InvalidInputError: For unusable parameters (all of them named in one error), before
            anything is uploaded, registered or submitted.
        ConfigurationError: For a workspace block that is not saved, or a compute cluster that
            does not exist, likewise before any side effect.
    """
    logger = get_run_logger()
    # Every parameter is checked before the first side effect (an upload, a dataset version,
    # a run): a flow refused for a typo leaves the workspace as it was.
    check_parameters(
        epochs=epochs,
        learning_rate=learning_rate,
        max_retries=max_retries,
        retry_delay_seconds=retry_delay_seconds,
        epoch_seconds=epoch_seconds,
        raw_dataset=raw_dataset,
        features_dataset=features_dataset,
        results_folder=results_folder,
    )
    backend = backend_for(workspace_block)  # ConfigurationError for a block that is not saved
    for compute in {preprocess_compute, train_compute}:
        backend.check_compute(compute)
    training_job = JobSpec(
        entry_script="flows/jobs/train.py",
        args=[
            "--epochs",
            str(epochs),
            "--learning_rate",
            str(learning_rate),
            "--epoch_seconds",
            str(epoch_seconds),
            *(() if resume else ("--no_resume",)),
        ],
        snapshot_root=PROJECT_ROOT,
        compute=train_compute,
        priority=Priority.LOW_PRIORITY if low_priority else Priority.DEDICATED,
        experiment="train-digits",
    )
    # What the backend cannot honour (on AzureML SDK v2, low priority on a dedicated cluster)
    # is refused now, not when the training job is submitted after preprocessing ran.
    backend.check_spec(training_job)
    raw_folder = export_digits(Path(tempfile.mkdtemp(prefix="himl-digits-")))
    upload_folder_to_datastore(workspace_block, "", raw_folder, raw_dataset)
    raw = ensure_dataset(workspace_block, raw_dataset)

    remembered = last_trained_variable(workspace_block, raw_dataset)
    if skip_if_unchanged and Variable.get(remembered) == raw.version:
        print(
            f"raw dataset {raw_dataset} is still version {raw.version}, which the last "
            "successful training used: nothing to do"
        )
        return {"skipped": True, "raw_dataset": f"{raw_dataset}:{raw.version}"}

    preprocess_job = JobSpec(
        entry_script="flows/jobs/preprocess.py",
        snapshot_root=PROJECT_ROOT,
        compute=preprocess_compute,
        experiment="preprocess-digits",
        input_datasets=[DatasetConfig(raw_dataset, version=raw.version)],
        output_datasets=[features_dataset],
    )
    if native_pipeline:
        chain = _run_as_pipeline(
            workspace_block,
            preprocess_job,
            dataclasses.replace(training_job, input_datasets=(DatasetConfig(features_dataset),)),
            max_retries=max_retries,
            retry_delay_seconds=retry_delay_seconds,
        )
    else:
        chain = _run_as_jobs(
            workspace_block,
            preprocess_job,
            training_job,
            features_dataset,
            max_retries=max_retries,
            retry_delay_seconds=retry_delay_seconds,
        )
    preprocessing, training = chain.preprocessing, chain.training
    features_version = preprocessing.outputs[features_dataset]
    results = Path(results_folder or tempfile.mkdtemp(prefix="himl-results-"))
    download_run_files(workspace_block, training.run, "outputs/", results)
    checkpoint = results / "outputs" / "checkpoints" / "best_model.ckpt"
    Variable.set(remembered, raw.version, overwrite=True)

    result = {
        "skipped": False,
        "native_pipeline": native_pipeline,
        "pipeline_run": chain.pipeline_run,
        "raw_dataset": f"{raw_dataset}:{raw.version}",
        "features_dataset": f"{features_dataset}:{features_version}",
        "preprocess_run": preprocessing.run.recovery_id,
        "train_run": training.run.recovery_id,
        "train_attempts": training.attempts,
        "test_accuracy": training.metrics.get("test_accuracy"),
        "epochs_trained": len([m for m in training.metric_history if m.name == "train_loss"]),
        "reused_runs": chain.reused_runs,
        "checkpoint": str(checkpoint),
    }
    create_markdown_artifact(
        key=RESULT_ARTIFACT,
        markdown=_lineage(result, preprocessing.run.portal_url, training.run.portal_url),
        description="What preprocess-then-train made, and from what",
    )
    logger.info("result: %s", result)
    return result


@dataclasses.dataclass
class _Step:
    """A job of the chain as the result reports it, run alone or as a pipeline's step."""

    run: RunRef
    attempts: list[str]
    outputs: dict[str, int]
    metrics: dict[str, float | str]
    metric_history: list[Metric]


@dataclasses.dataclass
class _Chain:
    preprocessing: _Step
    training: _Step
    reused_runs: list[str]
    pipeline_run: str | None = None


def _run_as_jobs(
    workspace_block: str,
    preprocess_job: JobSpec,
    training_job: JobSpec,
    features_dataset: str,
    *,
    max_retries: int,
    retry_delay_seconds: float,
) -> _Chain:
    """Prefect chains the jobs: preprocessing, then training on the version it wrote."""
    preprocessing = run_job(
        workspace_block,
        preprocess_job,
        max_retries=max_retries,
        retry_delay_seconds=retry_delay_seconds,
    )
    training = run_job(
        workspace_block,
        dataclasses.replace(
            training_job,
            input_datasets=(
                DatasetConfig(features_dataset, version=preprocessing.outputs[features_dataset]),
            ),
        ),
        max_retries=max_retries,
        retry_delay_seconds=retry_delay_seconds,
    )
    jobs = [
        _Step(job.run, job.attempts, job.outputs, job.metrics, job.metric_history)
        for job in (preprocessing, training)
    ]
    reused = [job.run.recovery_id for job in (preprocessing, training) if job.reused]
    return _Chain(jobs[0], jobs[1], reused)


def _run_as_pipeline(
    workspace_block: str,
    preprocess_job: JobSpec,
    training_job: JobSpec,
    *,
    max_retries: int,
    retry_delay_seconds: float,
) -> _Chain:
    """The backend chains the jobs: one pipeline run, its steps handing the features on."""
    pipeline = PipelineSpec(
        PIPELINE_NAME,
        [
            PipelineStep("preprocess", dataclasses.replace(preprocess_job, experiment="")),
            PipelineStep("train", dataclasses.replace(training_job, experiment="")),
        ],
        existing_datasets=[d.name for d in preprocess_job.input_datasets],
        experiment=PIPELINE_NAME,
    )
    result = run_pipeline(
        workspace_block,
        pipeline,
        max_retries=max_retries,
        retry_delay_seconds=retry_delay_seconds,
    )
    steps = []
    for name in ("preprocess", "train"):
        step = result.steps[name]
        source = step.source
        assert source is not None  # a completed pipeline's steps ran or were reused
        steps.append(_Step(source, step.attempts, step.outputs, step.metrics, step.metric_history))
    reused = [
        step.reused_from.recovery_id
        for step in result.steps.values()
        if step.reused_from is not None
    ]
    if result.reused:
        reused = [step.run.recovery_id for step in steps]
    return _Chain(steps[0], steps[1], reused, pipeline_run=result.run.recovery_id)


def check_parameters(
    *,
    epochs: int,
    learning_rate: float,
    max_retries: int,
    retry_delay_seconds: float,
    epoch_seconds: float,
    raw_dataset: str,
    features_dataset: str,
    results_folder: str,
) -> None:
    """Refuses unusable flow parameters, all of them in one error.

    Raises:
        InvalidInputError: Naming each unusable parameter and what would work.
    """
    problems: list[str] = []
    if not _whole(epochs) or epochs < 1:
        problems.append(f"epochs must be a whole number of 1 or more, not {epochs!r}")
    if not _finite(learning_rate) or learning_rate <= 0:
        problems.append(f"learning_rate must be a positive number, not {learning_rate!r}")
    if not _whole(max_retries) or max_retries < 0:
        problems.append(f"max_retries must be a whole number of 0 or more, not {max_retries!r}")
    for name, seconds in (
        ("retry_delay_seconds", retry_delay_seconds),
        ("epoch_seconds", epoch_seconds),
    ):
        if not _finite(seconds) or seconds < 0:
            problems.append(f"{name} must be a finite number of 0 or more, not {seconds!r}")
    for name, dataset in (("raw_dataset", raw_dataset), ("features_dataset", features_dataset)):
        try:
            DatasetConfig(dataset)
        except InvalidInputError as error:
            problems.append(f"{name}: {error}")
    if raw_dataset == features_dataset:
        problems.append(
            f"raw_dataset and features_dataset are both '{raw_dataset}': preprocessing would "
            "write a new version of its own input; give the features their own name"
        )
    blocking = _file_in_the_way(Path(results_folder)) if results_folder else None
    if blocking is not None:
        problems.append(
            f"results_folder '{results_folder}' cannot be a folder: '{blocking}' is a file"
        )
    if problems:
        raise InvalidInputError(
            "preprocess-then-train did not start: " + "; ".join(problems) + ". Nothing was "
            "uploaded, registered or submitted."
        )


def _file_in_the_way(folder: Path) -> Path | None:
    """The file standing where `folder` or one of its parents would be, if any."""
    for place in (folder, *folder.absolute().parents):
        if place.exists():
            return None if place.is_dir() else place
    return None


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _lineage(result: dict[str, Any], preprocess_url: str, train_url: str) -> str:
    accuracy = result["test_accuracy"]
    return "\n".join(
        [
            "# preprocess-then-train",
            "",
            "| step | run | reads | writes |",
            "| --- | --- | --- | --- |",
            f"| preprocess | [{result['preprocess_run']}]({preprocess_url}) | "
            f"{result['raw_dataset']} | {result['features_dataset']} |",
            f"| train | [{result['train_run']}]({train_url}) | {result['features_dataset']} | "
            f"checkpoint `{result['checkpoint']}` |",
            "",
            f"Test accuracy: **{accuracy:.4f}**" if accuracy is not None else "",
            f"Training attempts: {', '.join(result['train_attempts'])}",
            (
                f"Run as one native pipeline: pipeline run {result['pipeline_run']}."
                if result["pipeline_run"]
                else "Chained by Prefect: two jobs."
            ),
            (
                "Found, not submitted again (same code, data and settings): "
                + ", ".join(result["reused_runs"])
                if result["reused_runs"]
                else "Both jobs ran for this flow run."
            ),
        ]
    )


if __name__ == "__main__":
    print(preprocess_then_train())
