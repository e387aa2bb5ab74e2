"""A SweepSpec as an AzureML SDK v2 sweep job: built offline, read as the service receives it.

Each test reads the `SweepJob` the way the service gets it: its REST payload
(`job._to_rest_object()`, the body `jobs.create_or_update` sends) or its YAML (`job.dump()`).
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from himl_tasks.backends.azureml_v2 import AzureMLV2Backend, sdk
from himl_tasks.backends.azureml_v2.sweeps import check_sweep_v2, search_space_keys, sweep_job
from himl_tasks.errors import InvalidInputError
from himl_tasks.job_spec import JobSpec
from himl_tasks.sweeps import (
    BanditPolicy,
    Choice,
    LogUniform,
    MedianStoppingPolicy,
    SweepSpec,
    TruncationSelectionPolicy,
    Uniform,
    cross_validation,
    sample_trials,
)
from himl_tasks.testing.azurite import ACCOUNT_NAME, Azurite
from tests.backends.azureml_v2_execution import ExecutingAzureMLV2Service, executing_v2_service
from tests.backends.azureml_v2_service import (
    ENDED,
    KEEPS_RUNNING,
    TO_FAILED,
    FakeAzureMLV2Service,
    Outcome,
    script_error,
)
from tests.backends.azureml_v2_sweep_trials import max_concurrent_trials, sampled_trials, trial_job

# job.dump() goes through marshmallow schemas built with the `context` argument, which
# marshmallow 3.26 flags as removed in 4 (the SDK caps marshmallow below 4).
QUIET_DUMP = pytest.mark.filterwarnings("ignore::marshmallow.warnings.Marshmallow4Warning")


@pytest.fixture(scope="module")
def ml() -> Any:
    return sdk.ml()


def command_node(ml: Any, **overrides: Any) -> Any:
    """What `azure.ai.ml.command(...)` returns, as a backend builds it for a job."""
    settings: dict[str, Any] = {
        "name": "run-7f3a",
        "display_name": "train",
        "description": "a job",
        "experiment_name": "exp",
        "command": "python train.py --epochs 3",
        "code": ".",
        "environment": "himl-env:4",
        "compute": "gpu-cluster",
        "tags": {"owner": "me"},
        "environment_variables": {"HIML_IN_JOB": "azureml_v2"},
        **overrides,
    }
    return ml.command(**settings)


def sweep(**fields: Any) -> SweepSpec:
    settings: dict[str, Any] = {
        "parameters": {"lr": Uniform(0.001, 0.1)},
        "primary_metric": "val_loss",
        "max_total_runs": 4,
        **fields,
    }
    return SweepSpec(**settings)


def rest(job: Any) -> dict[str, Any]:
    """The sweep job's REST properties, as JSON would carry them."""
    body: dict[str, Any] = json.loads(json.dumps(job._to_rest_object().as_dict()))
    return body["properties"]  # type: ignore[no-any-return]


def dumped(job: Any) -> dict[str, Any]:
    text = io.StringIO()
    job.dump(text)
    loaded: dict[str, Any] = yaml.safe_load(text.getvalue())
    return loaded


# ---- the search space and the trial's command ------------------------------------------------


def test_every_parameter_kind_becomes_its_distribution(ml: Any) -> None:
    spec = sweep(
        parameters={
            "layers": Choice(2, 4, 8),
            "optimizer": Choice("adam", "sgd"),
            "dropout": Uniform(0.1, 0.5),
            "lr": LogUniform(1e-4, 1e-1),
        }
    )

    job = sweep_job(command_node(ml), spec)

    assert isinstance(job, ml.sweep.SweepJob)
    space = rest(job)["searchSpace"]
    assert space["layers"] == ["choice", [[2, 4, 8]]]
    assert space["optimizer"] == ["choice", [["adam", "sgd"]]]
    assert space["dropout"] == ["uniform", [0.1, 0.5]]
    # AzureML's loguniform takes the bounds of the logarithm (exp(min)..exp(max)).
    kind, (low, high) = space["lr"]
    assert kind == "loguniform"
    assert (low, high) == pytest.approx((math.log(1e-4), math.log(1e-1)))
    assert isinstance(job.search_space["lr"], ml.sweep.LogUniform)


def test_each_trial_gets_the_sampled_values_as_arguments_after_the_jobs_own(ml: Any) -> None:
    spec = sweep(parameters={"--lr": Uniform(0.001, 0.1), "layers": Choice(2, 4)})

    job = sweep_job(command_node(ml), spec)

    command = (
        "python train.py --epochs 3 --lr ${{search_space.lr}} --layers ${{search_space.layers}}"
    )
    assert job.trial.command == command
    assert rest(job)["trial"]["command"] == command


def test_arguments_azureml_does_not_take_as_keys_are_sent_under_cleaned_keys(ml: Any) -> None:
    spec = sweep(
        parameters={"model.learning-rate": Uniform(0.1, 0.2), "--2d": Choice(0, 1)},
    )

    job = sweep_job(command_node(ml), spec)

    assert search_space_keys(spec) == {
        "--model.learning-rate": "model_learning_rate",
        "--2d": "_2d",
    }
    assert set(rest(job)["searchSpace"]) == {"model_learning_rate", "_2d"}
    assert job.trial.command.endswith(
        "--model.learning-rate ${{search_space.model_learning_rate}} --2d ${{search_space._2d}}"
    )


@pytest.mark.parametrize(
    ("sampling", "rest_type"), [("random", "Random"), ("grid", "Grid"), ("bayesian", "Bayesian")]
)
def test_sampling(ml: Any, sampling: str, rest_type: str) -> None:
    spec = sweep(parameters={"layers": Choice(2, 4)}, sampling=sampling)

    job = sweep_job(command_node(ml), spec)

    assert rest(job)["samplingAlgorithm"]["samplingAlgorithmType"] == rest_type


@pytest.mark.parametrize("goal", ["minimize", "maximize"])
def test_objective(ml: Any, goal: str) -> None:
    job = sweep_job(command_node(ml), sweep(primary_metric="val/accuracy", goal=goal))

    assert rest(job)["objective"] == {"goal": goal, "primaryMetric": "val/accuracy"}


# ---- early termination ------------------------------------------------------------------------


def test_bandit_policy_with_a_slack_factor(ml: Any) -> None:
    policy = BanditPolicy(slack_factor=0.15, evaluation_interval=2, delay_evaluation=5)

    job = sweep_job(command_node(ml), sweep(early_termination=policy))

    # The SDK sends the slack not given as 0, as it does for its own users.
    assert rest(job)["earlyTermination"] == {
        "policyType": "Bandit",
        "slackFactor": 0.15,
        "slackAmount": 0,
        "evaluationInterval": 2,
        "delayEvaluation": 5,
    }


def test_bandit_policy_with_a_slack_amount(ml: Any) -> None:
    policy = BanditPolicy(slack_amount=0.2)

    job = sweep_job(command_node(ml), sweep(early_termination=policy))

    sent = rest(job)["earlyTermination"]
    assert (sent["slackAmount"], sent["slackFactor"]) == (0.2, 0)
    assert (sent["evaluationInterval"], sent["delayEvaluation"]) == (1, 0)


def test_median_stopping_policy(ml: Any) -> None:
    policy = MedianStoppingPolicy(evaluation_interval=1, delay_evaluation=5)

    job = sweep_job(command_node(ml), sweep(early_termination=policy))

    assert rest(job)["earlyTermination"] == {
        "policyType": "MedianStopping",
        "evaluationInterval": 1,
        "delayEvaluation": 5,
    }


def test_truncation_selection_policy(ml: Any) -> None:
    policy = TruncationSelectionPolicy(truncation_percentage=20, evaluation_interval=3)

    job = sweep_job(command_node(ml), sweep(early_termination=policy))

    assert rest(job)["earlyTermination"] == {
        "policyType": "TruncationSelection",
        "truncationPercentage": 20,
        "evaluationInterval": 3,
        "delayEvaluation": 0,
    }


def test_no_policy_sends_none(ml: Any) -> None:
    assert "earlyTermination" not in rest(sweep_job(command_node(ml), sweep()))


# ---- limits -------------------------------------------------------------------------------------


def test_limits_and_the_jobs_timeout_as_each_trials(ml: Any) -> None:
    spec = sweep(max_total_runs=12, max_concurrent_runs=3)

    job = sweep_job(command_node(ml, timeout=5400), spec, timeout_seconds=86400)

    assert rest(job)["limits"] == {
        "jobLimitsType": "Sweep",
        "maxTotalTrials": 12,
        "maxConcurrentTrials": 3,
        "timeout": "P1D",
        "trialTimeout": "PT1H30M",
    }


def test_without_timeouts_none_are_sent(ml: Any) -> None:
    limits = rest(sweep_job(command_node(ml), sweep()))["limits"]

    assert "timeout" not in limits
    assert "trialTimeout" not in limits


def test_grid_sampling_runs_every_combination_by_default(ml: Any) -> None:
    spec = SweepSpec(
        parameters={"a": Choice(1, 2, 3), "b": Choice("x", "y")},
        sampling="grid",
        primary_metric="m",
    )

    limits = rest(sweep_job(command_node(ml), spec))["limits"]

    assert (limits["maxTotalTrials"], limits["maxConcurrentTrials"]) == (6, 4)


# ---- cross-validation ---------------------------------------------------------------------------


def test_cross_validation_is_a_grid_over_the_fold_index(ml: Any) -> None:
    job = sweep_job(command_node(ml), cross_validation(5, primary_metric="val/loss"))

    sent = rest(job)
    assert sent["searchSpace"] == {"crossval_index": ["choice", [[0, 1, 2, 3, 4]]]}
    assert sent["samplingAlgorithm"]["samplingAlgorithmType"] == "Grid"
    assert (sent["limits"]["maxTotalTrials"], sent["limits"]["maxConcurrentTrials"]) == (5, 5)
    assert sent["objective"] == {"goal": "minimize", "primaryMetric": "val/loss"}
    assert sent["trial"]["command"].endswith("--crossval_index ${{search_space.crossval_index}}")


# ---- what the sweep job takes from the command job ---------------------------------------------


def test_the_sweep_job_carries_the_command_jobs_settings(ml: Any) -> None:
    node = command_node(
        ml,
        instance_count=2,
        shm_size="16g",
        distribution=ml.PyTorchDistribution(process_count_per_instance=4),
        queue_settings=ml.entities.QueueSettings(job_tier="Spot"),
        inputs={"data": ml.Input(type="uri_folder", path="azureml:images:3")},
    )
    node.command = "python train.py --data ${{inputs.data}}"

    sent = rest(sweep_job(node, sweep()))

    assert sent["experimentName"] == "exp"
    assert sent["displayName"] == "train"
    assert sent["computeId"] == "gpu-cluster"
    assert sent["tags"] == {"owner": "me"}
    assert sent["queueSettings"] == {"jobTier": "Spot"}
    assert sent["resources"]["instanceCount"] == 2
    assert sent["inputs"]["data"]["uri"] == "azureml:images:3"
    trial = sent["trial"]
    assert trial["environmentId"] == "himl-env:4"
    assert trial["environmentVariables"] == {"HIML_IN_JOB": "azureml_v2"}
    assert trial["distribution"] == {"distributionType": "PyTorch", "processCountPerInstance": 4}
    assert trial["resources"]["shmSize"] == "16g"
    assert trial["command"].startswith("python train.py --data ${{inputs.data}} --lr ")


def test_a_command_job_entity_is_taken_as_it_is_and_left_unchanged(ml: Any) -> None:
    entity = ml.entities.CommandJob(
        name="run-1",
        command="python train.py",
        environment="himl-env:4",
        compute="cpu",
        experiment_name="exp",
        limits=ml.entities.CommandJobLimits(timeout=600),
    )

    job = sweep_job(entity, sweep())

    assert job.name == "run-1"
    assert job.limits.trial_timeout == 600
    assert job.trial.command == "python train.py --lr ${{search_space.lr}}"
    assert entity.command == "python train.py"
    assert job._to_rest_object().name == "run-1"


@QUIET_DUMP
def test_the_yaml_holds_the_whole_sweep(ml: Any) -> None:
    spec = sweep(
        parameters={"lr": LogUniform(1e-3, 1.0), "layers": Choice(2, 4)},
        max_total_runs=8,
        max_concurrent_runs=2,
        early_termination=BanditPolicy(slack_factor=0.1, delay_evaluation=3),
        goal="maximize",
        primary_metric="acc",
    )

    doc = dumped(sweep_job(command_node(ml, timeout=60), spec, timeout_seconds=3600))

    assert doc["type"] == "sweep"
    assert doc["search_space"]["layers"] == {"type": "choice", "values": [2, 4]}
    assert doc["search_space"]["lr"]["type"] == "loguniform"
    assert doc["search_space"]["lr"]["min_value"] == pytest.approx(math.log(1e-3))
    assert doc["search_space"]["lr"]["max_value"] == pytest.approx(0.0)
    assert doc["sampling_algorithm"] == {"type": "random"}
    assert doc["early_termination"]["type"] == "bandit"
    assert doc["early_termination"]["slack_factor"] == 0.1
    assert doc["early_termination"]["delay_evaluation"] == 3
    assert doc["limits"] == {
        "max_total_trials": 8,
        "max_concurrent_trials": 2,
        "timeout": 3600,
        "trial_timeout": 60,
    }
    assert doc["objective"] == {"goal": "maximize", "primary_metric": "acc"}
    assert doc["trial"]["command"].endswith(
        "--lr ${{search_space.lr}} --layers ${{search_space.layers}}"
    )


# ---- refusals -----------------------------------------------------------------------------------


def refusal(spec: SweepSpec) -> str:
    with pytest.raises(InvalidInputError) as refused:
        check_sweep_v2(spec)
    return str(refused.value)


def test_bayesian_sampling_refuses_loguniform() -> None:
    message = refusal(
        sweep(sampling="bayesian", parameters={"lr": LogUniform(1e-4, 1e-1), "a": Uniform(0, 1)})
    )

    assert "bayesian sampling takes choice and uniform parameters only" in message
    assert "--lr is LogUniform" in message
    assert "--a" not in message


def test_bayesian_sampling_refuses_early_termination_even_in_a_spec_changed_after_checks() -> None:
    spec = sweep(sampling="bayesian")
    # SweepSpec refuses this pair when made; a spec changed afterwards is caught here too.
    object.__setattr__(spec, "early_termination", MedianStoppingPolicy())

    assert "bayesian sampling takes no early termination policy" in refusal(spec)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"max_total_runs": 1001}, "max_total_runs is 1001"),
        ({"max_concurrent_runs": 1001, "max_total_runs": 5}, "max_concurrent_runs is 1001"),
        (
            {
                "parameters": {"a": Choice(range(40)), "b": Choice(range(30))},
                "sampling": "grid",
                "max_total_runs": None,
            },
            "max_total_runs is 1200",
        ),
    ],
)
def test_more_than_1000_trials_are_refused(fields: dict[str, Any], named: str) -> None:
    message = refusal(sweep(**fields))

    assert named in message
    assert "at most 1000" in message


@pytest.mark.parametrize(
    ("parameters", "named"),
    [
        ({"lr": Uniform(0, 1), "--lr": Uniform(0, 2)}, "parameters 'lr', '--lr' all set"),
        ({"a-b": Uniform(0, 1), "a_b": Uniform(0, 2)}, "--a-b, --a_b would share"),
        ({"LR": Uniform(0, 1), "lr": Uniform(0, 2)}, "--LR, --lr would share"),
        ({"--": Uniform(0, 1)}, "names no argument"),
        ({"learning rate": Uniform(0, 1)}, "the argument '--learning rate' goes into"),
        ({"lr;x": Uniform(0, 1)}, "the argument '--lr;x' goes into"),
    ],
)
def test_names_azureml_cannot_tell_apart_are_refused(
    parameters: dict[str, Any], named: str
) -> None:
    assert named in refusal(sweep(parameters=parameters))


@pytest.mark.parametrize(
    ("parameter", "named"),
    [
        (Choice("a b", "c"), "'a b'"),
        (Choice("$HOME"), "'$HOME'"),
        (Choice("x;rm"), "'x;rm'"),
        (Choice(""), "''"),
        (Choice(True, False), "write it as text, 'True'"),
        (Choice(1.0, float("nan")), "nan"),
        (Uniform(0, float("inf")), "inf"),
    ],
)
def test_values_the_trials_command_or_the_payload_cannot_carry_are_refused(
    parameter: Any, named: str
) -> None:
    message = refusal(sweep(parameters={"opt": parameter}))

    assert "--opt has the" in message
    assert named in message


@pytest.mark.parametrize(
    ("policy", "named"),
    [
        (BanditPolicy(slack_factor=0), "BanditPolicy.slack_factor is 0"),
        (BanditPolicy(slack_amount=-0.1), "BanditPolicy.slack_amount is -0.1"),
        (MedianStoppingPolicy(evaluation_interval=-1), "evaluation_interval is -1"),
        (TruncationSelectionPolicy(20, delay_evaluation=-2), "delay_evaluation is -2"),
    ],
)
def test_policy_fields_v2_cannot_send_are_refused(policy: Any, named: str) -> None:
    assert named in refusal(sweep(early_termination=policy))


def test_every_problem_is_named_in_one_error() -> None:
    spec = sweep(
        parameters={"lr": LogUniform(0.1, 1), "opt": Choice("a b")},
        sampling="bayesian",
        max_total_runs=2000,
    )

    message = refusal(spec)

    assert message.startswith("this sweep cannot run as an AzureML SDK v2 sweep job: ")
    for named in ("--lr is LogUniform", "max_total_runs is 2000", "'a b'"):
        assert named in message


def test_the_builder_refuses_before_building(ml: Any) -> None:
    node = command_node(ml)
    spec = sweep(parameters={"opt": Choice("a b")})

    with pytest.raises(InvalidInputError, match="'a b'"):
        sweep_job(node, spec)
    assert node.command == "python train.py --epochs 3"


@pytest.mark.parametrize("given", ["python train.py", None])
def test_anything_but_a_command_job_is_refused(given: Any) -> None:
    with pytest.raises(InvalidInputError, match="a v2 sweep runs a command job"):
        sweep_job(given, sweep())


def test_a_sweep_timeout_below_a_second_is_refused(ml: Any) -> None:
    with pytest.raises(InvalidInputError, match="timeout_seconds must be 1 or more"):
        sweep_job(command_node(ml), sweep(), timeout_seconds=0)


def test_every_spec_the_builder_takes_passes_the_check_first(ml: Any) -> None:
    # A refused spec never reaches the SDK: the same check runs inside sweep_job.
    spec = dataclasses.replace(sweep(), max_total_runs=1001)

    with pytest.raises(InvalidInputError, match="max_total_runs is 1001"):
        sweep_job(command_node(ml), spec)


def test_checking_imports_no_sdk() -> None:
    code = (
        "import sys\n"
        "from himl_tasks.backends.azureml_v2.sweeps import check_sweep_v2\n"
        "from himl_tasks.sweeps import Choice, SweepSpec\n"
        "check_sweep_v2(SweepSpec(parameters={'a': Choice(1, 2)}, primary_metric='m',"
        " max_total_runs=2))\n"
        "assert 'azure.ai.ml' not in sys.modules, 'azure.ai.ml was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ---- the trials, as the service starts them (the stand-in's reading) ---------------------------


def test_each_trial_runs_the_script_with_its_values_appended_as_locally(ml: Any) -> None:
    spec = SweepSpec(
        parameters={"--lr": Choice(0.1, 0.01), "layers": Choice(2, 4), "opt": Choice("adam")},
        sampling="grid",
        primary_metric="val_loss",
    )
    job = sweep_job(command_node(ml), spec)

    commands = [trial_job(job, i, values).command for i, values in enumerate(sampled_trials(job))]

    # The local backend's trials get the same arguments, in the same order.
    assert commands == [
        "python train.py --epochs 3 " + " ".join(f"{name} {value}" for name, value in trial.items())
        for trial in sample_trials(spec)
    ]


def test_a_trial_is_a_child_command_job_of_the_sweep(ml: Any) -> None:
    spec = sweep(parameters={"lr": LogUniform(1e-4, 1e-2)}, max_total_runs=3, max_concurrent_runs=2)
    job = sweep_job(command_node(ml, timeout=300), spec)

    trials = sampled_trials(job)
    child = trial_job(job, 1, trials[1])

    assert len(trials) == 3
    assert all(1e-4 <= values["lr"] <= 1e-2 for values in trials)
    assert max_concurrent_trials(job, len(trials)) == 2
    assert isinstance(child, ml.entities.CommandJob)
    assert child.name == "run-7f3a_1"
    assert (child.experiment_name, child.compute) == ("exp", "gpu-cluster")
    assert child.command == f"python train.py --epochs 3 --lr {trials[1]['lr']!r}"
    assert child.environment_variables["AZUREML_SWEEP_lr"] == repr(trials[1]["lr"])
    assert child.environment_variables["HIML_IN_JOB"] == "azureml_v2"
    assert child.limits.timeout == 300


# ---- the stand-in runs a sweep job's trials as child jobs ----------------------------------------


def submitted_sweep(
    service: FakeAzureMLV2Service, project: Path, spec: SweepSpec, name: str = "sweep-1"
) -> Any:
    (project / "train.py").write_text("print('train')\n")
    (project / ".amlignore").write_text("data/\n")
    (project / "data").mkdir()
    (project / "data" / "big.bin").write_bytes(b"x")
    node = command_node(sdk.ml(), name=name, code=str(project), compute="cpu-cluster")
    return service.create_job(sweep_job(node, spec))


def test_the_stand_in_starts_trials_as_children_at_most_max_concurrent_at_once(
    aml_v2_service: FakeAzureMLV2Service, tmp_path: Path
) -> None:
    spec = SweepSpec(
        parameters={"lr": Choice(0.1, 0.01, 0.001), "layers": Choice(2, 4)},
        sampling="grid",
        primary_metric="loss",
        max_concurrent_runs=2,
    )
    submitted_sweep(aml_v2_service, tmp_path, spec)

    most_running, statuses = 0, []
    for _ in range(200):
        statuses.append(aml_v2_service.run_details("sweep-1")["status"])
        children = aml_v2_service.list_jobs(parent_job_name="sweep-1")
        most_running = max(most_running, sum(c.status not in ENDED for c in children))
        if statuses[-1] == "Completed":
            break

    children = sorted(  # by trial index: the listing's order is not the point here
        aml_v2_service.list_jobs(parent_job_name="sweep-1"), key=lambda c: int(c.name[8:])
    )
    assert statuses[-1] == "Completed"
    assert most_running == 2
    assert [c.name for c in children] == [f"sweep-1_{n}" for n in range(6)]
    assert all(c.status == "Completed" for c in children)
    assert [c.command for c in children] == [
        f"python train.py --epochs 3 --lr {lr} --layers {layers}"
        for lr in (0.1, 0.01, 0.001)
        for layers in (2, 4)
    ]
    details = aml_v2_service.run_details("sweep-1_5")
    assert details["parentRunId"] == "sweep-1"
    assert [j.name for j in aml_v2_service.list_jobs()] == ["sweep-1"]
    # The sweep job's code is its trial's, taken with the .amlignore.
    entity, snapshot = aml_v2_service.submitted[-1]
    assert entity.type == "sweep"
    assert snapshot == [".amlignore", "train.py"]


def test_the_stand_in_plays_scripted_trial_outcomes(
    aml_v2_service: FakeAzureMLV2Service, tmp_path: Path
) -> None:
    aml_v2_service.outcomes["train.py"] = Outcome(
        children=(Outcome(), Outcome(statuses=TO_FAILED, error=script_error(2)))
    )
    submitted_sweep(aml_v2_service, tmp_path, cross_validation(2, primary_metric="loss"))

    for _ in range(50):
        if aml_v2_service.run_details("sweep-1")["status"] == "Completed":
            break

    assert aml_v2_service.run_details("sweep-1_0")["status"] == "Completed"
    failed = aml_v2_service.run_details("sweep-1_1")
    assert failed["status"] == "Failed"
    assert "status code 2" in failed["error"]["error"]["message"]
    assert aml_v2_service.job("sweep-1_1").command.endswith("--crossval_index 1")


def test_canceling_the_stand_ins_sweep_cancels_its_trials_and_starts_no_more(
    aml_v2_service: FakeAzureMLV2Service, tmp_path: Path
) -> None:
    aml_v2_service.next_outcome = Outcome(statuses=KEEPS_RUNNING)
    spec = sweep(parameters={"lr": Choice(1, 2, 3)}, sampling="grid", max_concurrent_runs=1)
    spec = dataclasses.replace(spec, max_total_runs=3)
    submitted_sweep(aml_v2_service, tmp_path, spec)
    for _ in range(8):
        aml_v2_service.run_details("sweep-1")
    assert [c.status for c in aml_v2_service.list_jobs(parent_job_name="sweep-1")] == ["Running"]

    aml_v2_service.cancel_job("sweep-1")
    for _ in range(5):
        aml_v2_service.run_details("sweep-1")

    assert aml_v2_service.run_details("sweep-1")["status"] == "Canceled"
    assert [c.status for c in aml_v2_service.list_jobs(parent_job_name="sweep-1")] == ["Canceled"]


# ---- through the backend ----------------------------------------------------------------------


def backend_job(project: Path, **fields: Any) -> JobSpec:
    (project / "train.py").write_text("print('train')\n")
    (project / "environment.yml").write_text("name: job\ndependencies:\n  - python=3.11\n")
    return JobSpec(
        entry_script="train.py",
        snapshot_root=project,
        compute="cpu-cluster",
        args=["--epochs", "3"],
        **fields,
    )


def test_the_backend_submits_a_sweep_job_named_after_the_submission(
    aml_v2: AzureMLV2Backend, aml_v2_service: FakeAzureMLV2Service, tmp_path: Path
) -> None:
    spec = sweep(
        parameters={"lr": LogUniform(1e-4, 1e-1), "layers": Choice(2, 4)},
        max_total_runs=3,
        max_concurrent_runs=1,
        early_termination=MedianStoppingPolicy(delay_evaluation=5),
    )

    parent = aml_v2.submit_sweep(
        backend_job(tmp_path, max_run_duration="1h"), spec, submission_id="sweep-a"
    )
    again = aml_v2.submit_sweep(backend_job(tmp_path), spec, submission_id="sweep-a")
    state = aml_v2.wait(parent, timeout=60, poll=0)

    assert again == parent and state.succeeded
    assert aml_v2_service.create_requests == 1
    entity, _ = aml_v2_service.submitted[-1]
    sent = rest(entity)
    assert entity.name == parent.run_id
    assert sent["jobType"] == "Sweep"
    assert set(sent["searchSpace"]) == {"lr", "layers"}
    assert sent["earlyTermination"]["policyType"] == "MedianStopping"
    assert sent["limits"]["maxConcurrentTrials"] == 1
    assert sent["limits"]["trialTimeout"] == "PT1H"
    assert sent["trial"]["command"] == (
        "python train.py --epochs 3 --lr ${{search_space.lr}} --layers ${{search_space.layers}}"
    )
    trials = aml_v2.child_runs(parent)
    assert len(trials) == 3
    assert all(aml_v2.get_state(t).succeeded for t in trials)


def test_the_backend_refuses_what_v2_cannot_sweep_before_any_side_effect(
    aml_v2: AzureMLV2Backend, aml_v2_service: FakeAzureMLV2Service, tmp_path: Path
) -> None:
    spec = sweep(sampling="bayesian", parameters={"lr": LogUniform(1e-4, 1e-1)})

    with pytest.raises(InvalidInputError, match="bayesian sampling takes choice and uniform"):
        aml_v2.submit_sweep(backend_job(tmp_path), spec, submission_id="sweep-b")

    assert aml_v2_service.create_requests == 0
    assert aml_v2_service.environments == {}
    assert not (tmp_path / "most_recent_run.txt").exists()


# ---- on the executing stand-in: the trials run, each with its sampled arguments -----------------

TRIAL_SCRIPT = """\
import argparse
from himl_tasks.runtime import log_metrics
parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int)
parser.add_argument("--lr", type=float)
parser.add_argument("--layers", type=int)
args = parser.parse_args()
print(f"lr={args.lr} layers={args.layers}", flush=True)
log_metrics({"loss": args.lr * args.layers}, step=0)
"""


@pytest.fixture
def executing(azurite: Azurite) -> Iterator[ExecutingAzureMLV2Service]:
    yield from executing_v2_service(azurite)


@pytest.mark.filterwarnings(
    "ignore:The ``noload`` loader strategy is deprecated:DeprecationWarning"
)  # MLflow 3.17's SQL store (the stand-in's tracking server) and SQLAlchemy 2.1
def test_on_the_executing_stand_in_each_trial_runs_with_its_sampled_arguments(
    executing: ExecutingAzureMLV2Service, azurite: Azurite, tmp_path: Path
) -> None:
    backend = AzureMLV2Backend(service=executing, account_urls={ACCOUNT_NAME: azurite.account_url})
    project = tmp_path / "project"
    project.mkdir()
    spec = backend_job(project)
    (project / "train.py").write_text(TRIAL_SCRIPT)
    sweep_spec = SweepSpec(
        parameters={"lr": Choice(0.5, 0.25), "layers": Choice(2, 4)},
        sampling="grid",
        primary_metric="loss",
        max_concurrent_runs=2,
    )

    parent = backend.submit_sweep(spec, sweep_spec)
    assert backend.wait(parent, timeout=240, poll=0.2).succeeded

    trials = backend.child_runs(parent)
    assert len(trials) == 4
    assert len(executing.executed) == 4  # the trials ran; the sweep job itself runs nothing
    losses = {}
    for trial in trials:
        assert backend.get_state(trial).succeeded
        log = executing.run_details(trial.run_id)
        assert log["parentRunId"] == parent.run_id
        (loss,) = [m.value for m in backend.get_metrics(trial) if m.name == "loss"]
        losses[executing.job(trial.run_id).command.split(" --lr ")[1]] = loss
    assert losses == {
        "0.5 --layers 2": 1.0,
        "0.5 --layers 4": 2.0,
        "0.25 --layers 2": 0.5,
        "0.25 --layers 4": 1.0,
    }
