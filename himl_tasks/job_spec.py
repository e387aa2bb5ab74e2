"""What to run, where and with what: the backend-neutral description of a job."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar, cast

from himl_tasks.datasets import DatasetConfig, as_dataset_configs
from himl_tasks.errors import InvalidInputError
from himl_tasks.job_variables import is_set_by_backends
from himl_tasks.number_checks import is_number, is_whole_number
from himl_tasks.runs import parse_recovery_id
from himl_tasks.secret_reference import SecretReference

AZUREML_FLAG = "--azureml"
LOCAL_FLAG = "--himl-local"
SUBMISSION_FLAGS = (AZUREML_FLAG, LOCAL_FLAG)
"""Where hi-ml's door submits a script (`--himl-local` is ours): never the job's arguments."""
COMMANDLINE_TAG = "commandline_args"
"""hi-ml's tag for a submitted run's arguments, when the caller gives no tags."""
EXPERIMENT_NAME_VARIABLE = "HIML_EXPERIMENT_NAME"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_SECONDS_PER_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_NOT_IN_EXPERIMENT_NAME = re.compile(r"[^A-Za-z0-9_\-]")
_MAX_EXPERIMENT_NAME = 255


class Priority(enum.StrEnum):
    """The kind of virtual machine a job runs on."""

    DEDICATED = "dedicated"
    LOW_PRIORITY = "low_priority"


def parse_duration(text: str | float | None) -> float | None:
    """Turns "90s", "30m", "3.5h" or "2d" (or a number of seconds) into seconds.

    Raises:
        InvalidInputError: For any other text, or a duration that is not positive.
    """
    if text is None:
        return None
    if is_number(text):
        try:
            seconds = float(text)
        except OverflowError:  # a whole number too big for a float
            seconds = math.inf
    else:
        match = _DURATION.match(str(text))
        if not match:
            raise InvalidInputError(
                f"max_run_duration '{text}' is not a duration: write a number followed by s, m, "
                "h or d, e.g. '90s', '30m', '3.5h', '2d'"
            )
        seconds = float(match.group(1)) * _SECONDS_PER_UNIT[match.group(2)]
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidInputError(
            f"max_run_duration must be a positive, finite duration, not '{text}'; leave it "
            "None for no limit"
        )
    return seconds


def job_arguments(script_params: Sequence[str] | None, argv: Sequence[str]) -> list[str]:
    """The job's arguments: `script_params` when given (even empty), else the command line's.

    The command line's lose the submission flags; `sys.argv` itself is not changed.

    Raises:
        InvalidInputError: If `script_params` is one string, not a list of them.
    """
    if isinstance(script_params, str | bytes):
        # list("--epochs 3") would be the job's arguments "-", "-", "e", ...
        raise InvalidInputError(
            f"script_params must be a list of strings, e.g. ['--epochs', '3'], not "
            f"{script_params!r}"
        )
    if script_params is not None:
        return list(script_params)
    return [argument for argument in argv[1:] if argument not in SUBMISSION_FLAGS]


def sanitize_experiment_name(name: str) -> str:
    """Makes a name AzureML accepts: anything but letters, digits, '_' and '-' becomes '_'.

    The name starts with a letter or digit and has at most 255 characters.

    Raises:
        InvalidInputError: If nothing usable is left.
    """
    cleaned = _NOT_IN_EXPERIMENT_NAME.sub("_", name.strip()).lstrip("_-")[:_MAX_EXPERIMENT_NAME]
    if not cleaned:
        raise InvalidInputError(f"'{name}' cannot be made into an experiment name")
    return cleaned


@dataclass(frozen=True, init=False)
class JobSpec:
    """A job: a script or module with arguments, its snapshot, environment, compute and data.

    Args:
        entry_script: The script to run, inside `snapshot_root` (relative paths are taken from
            `snapshot_root`). Give this or `module`.
        module: A module to run as `python -m module`, found in the snapshot.
        args: Arguments for the script; `--azureml` is removed, as hi-ml does.
        snapshot_root: The folder copied to the job (default: the current folder).
        ignored_folders: Folders (relative to `snapshot_root`) that do not travel, in addition
            to `.amlignore` and the defaults.
        conda_environment_file: The conda environment file (AzureML; default: the nearest
            `environment.yml` upward).
        docker_base_image: Base image for the environment (AzureML).
        docker_shm_size: Shared memory size, e.g. "100g" (AzureML).
        pip_extra_index_url: An extra package index for pip (AzureML).
        private_pip_wheel_path: A wheel to upload and install (AzureML).
        environment_name: A registered environment to use instead of building one (AzureML).
        python_executable: The interpreter for local runs (default: the current one): a name
            looked up on PATH, or a path (a relative one is taken from the current folder).
        compute: The compute cluster's name ("" for the local default cluster).
        num_nodes: Number of nodes; more than one makes a distributed PyTorch job.
        processes_per_node: Processes started on each node.
        priority: Dedicated or low-priority machines.
        input_datasets: Datasets the job reads (names or `DatasetConfig`s).
        output_datasets: Datasets the job writes (names or `DatasetConfig`s).
        environment_variables: Extra environment variables for the job's processes. A value
            may be a `SecretReference("ENV_NAME")`: the job gets the value of ENV_NAME in the
            submitter's environment, and no record of the job holds it (local backend). The
            variables a backend sets in every job (`HIML_IN_JOB`, `HIML_RUN_ID`, ...; see
            `himl_tasks.job_variables`) are refused.
        tags: Tags recorded with the run (default: the command line).
        experiment: The experiment's name (default: $HIML_EXPERIMENT_NAME, else the script's
            or module's name); characters AzureML does not allow become '_'.
        display_name: A human-friendly name for the run.
        max_run_duration: Seconds, or text such as "3.5h" / "2d"; the run fails with failure
            kind `timeout` when it runs longer.
        resume_from: A run recovery id whose recovery checkpoints the job starts from.

    A spec is normalised when made, once: `snapshot_root` becomes an absolute folder (the
    current folder at that moment when not given), `entry_script` an absolute path inside it,
    `conda_environment_file`, `private_pip_wheel_path` and the datasets' `local_folder`
    absolute (relative ones are taken from the current folder), `max_run_duration` a number
    of seconds, the sequences tuples and the datasets `DatasetConfig`s. Nothing read later
    depends on the process's current folder, and making a spec again from its own fields
    gives an equal spec.

    Raises:
        InvalidInputError: For a spec that cannot describe a job (both or neither of
            entry_script and module, a node count below 1, a bad duration, ...).
    """

    entry_script: Path | None
    module: str | None
    args: tuple[str, ...]
    snapshot_root: Path
    ignored_folders: tuple[str, ...]
    conda_environment_file: Path | None
    docker_base_image: str
    docker_shm_size: str
    pip_extra_index_url: str
    private_pip_wheel_path: Path | None
    environment_name: str
    python_executable: str
    compute: str
    num_nodes: int
    processes_per_node: int
    priority: Priority
    input_datasets: tuple[DatasetConfig, ...]
    output_datasets: tuple[DatasetConfig, ...]
    environment_variables: Mapping[str, str | SecretReference]
    tags: Mapping[str, str]
    experiment: str
    display_name: str
    max_run_duration: float | None
    resume_from: str

    def __init__(
        self,
        entry_script: Path | str | None = None,
        module: str | None = None,
        args: Sequence[str] = (),
        snapshot_root: Path | str | None = None,
        ignored_folders: Sequence[str] = (),
        conda_environment_file: Path | str | None = None,
        docker_base_image: str = "",
        docker_shm_size: str = "",
        pip_extra_index_url: str = "",
        private_pip_wheel_path: Path | str | None = None,
        environment_name: str = "",
        python_executable: str = "",
        compute: str = "",
        num_nodes: int = 1,
        processes_per_node: int = 1,
        priority: Priority | str = Priority.DEDICATED,
        input_datasets: Sequence[DatasetConfig | str] = (),
        output_datasets: Sequence[DatasetConfig | str] = (),
        environment_variables: Mapping[str, str | SecretReference] | None = None,
        tags: Mapping[str, str] | None = None,
        experiment: str = "",
        display_name: str = "",
        max_run_duration: float | str | None = None,
        resume_from: str = "",
    ) -> None:
        # Every field is given as the caller wrote it, then normalised in place, once: each
        # field has one name and, once made, one type (the annotation above).
        given = dict(locals())
        del given["self"]
        given["environment_variables"] = (
            {} if environment_variables is None else environment_variables
        )
        given["tags"] = {} if tags is None else tags
        for name, value in given.items():
            object.__setattr__(self, name, value)
        self._normalise()

    def _normalise(self) -> None:
        if _blank(self.entry_script) == _blank(self.module):
            raise InvalidInputError("a job needs exactly one of entry_script and module")
        if not _blank(self.module) and not isinstance(self.module, str):
            raise InvalidInputError(
                f"module must be a module's dotted name as text, not {self.module!r}"
            )
        if self.module == "":
            object.__setattr__(self, "module", None)  # "" is how a form or JSON says "none"
        for count in ("num_nodes", "processes_per_node"):
            value = getattr(self, count)
            if not is_whole_number(value) or value < 1:
                raise InvalidInputError(
                    f"{count} must be a whole number of 1 or more, not {value!r}"
                )
        for name in _TEXT_FIELDS:
            if not isinstance(getattr(self, name), str):
                raise InvalidInputError(f"{name} must be text, not {getattr(self, name)!r}")
        object.__setattr__(self, "max_run_duration", parse_duration(self.max_run_duration))
        if self.resume_from:
            parse_recovery_id(self.resume_from)
        if self.priority not in set(Priority):
            raise InvalidInputError(
                f"priority must be one of {', '.join(repr(p.value) for p in Priority)}, not "
                f"{self.priority!r}"
            )
        object.__setattr__(self, "priority", Priority(self.priority))
        _normalise_paths(self)
        for sequence in ("args", "ignored_folders"):
            object.__setattr__(self, sequence, _texts(sequence, getattr(self, sequence)))
        # The script never sees a submission flag: it only says where to submit.
        object.__setattr__(self, "args", tuple(a for a in self.args if a not in SUBMISSION_FLAGS))
        for mapping in ("environment_variables", "tags"):
            _check_text_mapping(mapping, getattr(self, mapping))
            # A copy of its own that cannot change: the caller's dict may, after the checks.
            object.__setattr__(self, mapping, FrozenMapping(getattr(self, mapping)))
        for datasets in ("input_datasets", "output_datasets"):
            configs = as_dataset_configs(getattr(self, datasets), parameter=datasets)
            object.__setattr__(self, datasets, tuple(map(_absolute_local_folder, configs)))
        names = [d.name for d in self.input_datasets] + [d.name for d in self.output_datasets]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InvalidInputError(
                f"dataset {', '.join(duplicates)} is named more than once among the job's "
                "inputs and outputs"
            )
        _refuse_shared_target_folders(self.input_datasets + self.output_datasets)

    @property
    def recovery_file_folder(self) -> Path:
        """Where `most_recent_run.txt` is written: the script's folder, else the root."""
        script = self.entry_script
        return script.parent if script is not None else self.snapshot_root

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        """How pydantic makes a spec, e.g. a Prefect flow's parameter: from a spec or its fields.

        A deployment's parameters arrive as JSON: the spec's fields as `to_json` writes them,
        or as a person types them (dataset names as text, "3.5h"). They are normalised by the
        spec itself, as any spec is.
        """
        return parameter_schema(_spec_from_parameter)

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> dict[str, Any]:
        """The JSON schema of a spec parameter (an object of the spec's fields)."""
        return {
            "type": "object",
            "title": "JobSpec",
            "description": "A job: entry_script or module, args, snapshot_root, compute, ...",
        }

    def resuming_from(self, recovery_id: str) -> JobSpec:
        """The same job, to start from the recovery checkpoints of run `recovery_id`."""
        return dataclasses.replace(self, resume_from=recovery_id)

    def with_snapshot_at(self, root: Path) -> JobSpec:
        """The same job run from a copy of its snapshot at `root`: the entry script within it."""
        script = self.entry_script
        return dataclasses.replace(
            self,
            snapshot_root=root,
            entry_script=None if script is None else root / script.relative_to(self.snapshot_root),
        )

    def experiment_name(self, environ: Mapping[str, str] | None = None) -> str:
        """The experiment's name, sanitised for AzureML.

        It is `experiment`, else $HIML_EXPERIMENT_NAME, else the script's or module's name.

        Args:
            environ: The environment variables to read (default: the process's).
        """
        env = os.environ if environ is None else environ
        if self.experiment or env.get(EXPERIMENT_NAME_VARIABLE):
            name = self.experiment or env[EXPERIMENT_NAME_VARIABLE]
        elif self.entry_script is not None:
            name = Path(self.entry_script).stem
        else:
            name = str(self.module).rsplit(".", 1)[-1]
        return sanitize_experiment_name(name)

    def to_json(self) -> str:
        """The spec as JSON text (paths as text), for handing it to another process.

        `JobSpec.from_json` makes an equal spec of it.
        """
        return json.dumps(_json_fields(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> JobSpec:
        """The spec `to_json` wrote.

        Raises:
            InvalidInputError: If the text is not a spec's JSON.
        """
        try:
            fields = json.loads(text)
            return _from_json_fields(fields)
        except (ValueError, TypeError, AttributeError) as error:
            raise InvalidInputError(f"not the JSON of a JobSpec: {error}") from error


_V = TypeVar("_V")


class FrozenMapping(dict[str, _V]):
    """A dict that cannot change after it is made, so a spec holding it can be hashed.

    It is a dict for everything that reads one (JSON, pydantic, `dataclasses.asdict`).
    """

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self),))

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError("a JobSpec's mappings cannot change; use dataclasses.replace")

    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse


def _refuse_shared_target_folders(datasets: Sequence[DatasetConfig]) -> None:
    """Two datasets in one folder (or one inside the other) would see each other's files."""
    placed = [(d.name, d.target_folder) for d in datasets if d.target_folder is not None]
    for index, (name, folder) in enumerate(placed):
        for other, other_folder in placed[index + 1 :]:
            if (
                folder == other_folder
                or folder in other_folder.parents
                or (other_folder in folder.parents)
            ):
                raise InvalidInputError(
                    f"datasets '{name}' and '{other}' have target_folder {folder} and "
                    f"{other_folder}: one would hide or mix with the other's files; give "
                    "each its own folder"
                )


_TEXT_FIELDS = (
    "docker_base_image", "docker_shm_size", "pip_extra_index_url", "environment_name",
    "python_executable", "compute", "experiment", "display_name", "resume_from",
)  # fmt: skip
_ENVIRONMENT_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _texts(name: str, values: object) -> tuple[str, ...]:
    """A list of strings as a tuple; one string is refused (it is not a list of arguments)."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise InvalidInputError(
            f"{name} must be a list of strings, e.g. ['--epochs', '3'], not {values!r}"
        )
    wrong = [v for v in values if not isinstance(v, str)]
    if wrong:
        raise InvalidInputError(
            f"{name} must hold only strings, not {wrong[0]!r}; write numbers as text, e.g. '3'"
        )
    _refuse_nul(name, values)
    return tuple(values)


def _refuse_nul(name: str, values: Iterable[str]) -> None:
    """A NUL byte cannot be in a process's arguments or environment: refused, not run."""
    found = next((v for v in values if "\0" in v), None)
    if found is not None:
        raise InvalidInputError(
            f"{name} holds {found!r}, with a NUL byte, which no process can be given: remove it"
        )


def check_environment_variables(values: object) -> None:
    """Checks variables as a spec does: names a process can have, text or `SecretReference`s.

    Raises:
        InvalidInputError: For anything but such a mapping, a NUL byte, or a variable the
            backends set in every job.
    """
    _check_text_mapping("environment_variables", values)


def _check_text_mapping(name: str, values: object) -> None:
    if not isinstance(values, Mapping):
        raise InvalidInputError(f"{name} must be a mapping of names to strings, not {values!r}")
    # A job's variable may name a secret instead of holding a value.
    allowed = (str, SecretReference) if name == "environment_variables" else (str,)
    for key, value in values.items():
        if not isinstance(key, str) or not isinstance(value, allowed):
            what = "strings or SecretReference" if len(allowed) > 1 else "strings"
            raise InvalidInputError(f"{name} must map strings to {what}; {key!r}: {value!r} is not")
        _refuse_nul(name, [key, value] if isinstance(value, str) else [key])
        if name == "environment_variables" and not _ENVIRONMENT_VARIABLE.match(key):
            raise InvalidInputError(
                f"'{key}' is not a usable environment variable name: use letters, digits and "
                "'_', not starting with a digit"
            )
        if name == "environment_variables" and is_set_by_backends(key):
            raise InvalidInputError(
                f"environment variable {key} is set by the backend in every job it runs (it "
                "tells the job where it runs); the spec cannot set it. To resume from a run, "
                "set JobSpec.resume_from"
            )


def _blank(value: object) -> bool:
    """True for a path or name left out: None, or "" (how a form or JSON says "none")."""
    return value is None or value == ""


def _normalise_paths(spec: JobSpec) -> None:
    """Makes the spec's paths absolute, once: later reads never depend on the current folder."""
    for name in ("snapshot_root", "entry_script", "conda_environment_file",
                 "private_pip_wheel_path"):  # fmt: skip
        value = getattr(spec, name)
        if value is not None and not isinstance(value, str | os.PathLike):
            raise InvalidInputError(f"{name} must be a path, not {value!r}")
    root = Path(spec.snapshot_root or Path.cwd()).absolute()
    object.__setattr__(spec, "snapshot_root", root)
    if _blank(spec.entry_script):
        object.__setattr__(spec, "entry_script", None)
    else:
        # A relative script is taken from the snapshot root, as the job sees it.
        object.__setattr__(spec, "entry_script", root / Path(cast(str, spec.entry_script)))
    for name in ("conda_environment_file", "private_pip_wheel_path"):
        value = getattr(spec, name)
        object.__setattr__(spec, name, None if value in (None, "") else Path(value).absolute())
    if os.sep in spec.python_executable or "/" in spec.python_executable:
        # A path, not a name looked up on PATH: the job starts in another folder.
        object.__setattr__(spec, "python_executable", str(Path(spec.python_executable).absolute()))


def _absolute_local_folder(config: DatasetConfig) -> DatasetConfig:
    """A dataset's relative `local_folder` taken from the current folder, once."""
    folder = config.local_folder
    if folder is None or folder.is_absolute():
        return config
    return dataclasses.replace(config, local_folder=folder.absolute())


def _json_fields(spec: JobSpec) -> dict[str, Any]:
    fields = dataclasses.asdict(spec)
    return json.loads(json.dumps(fields, default=str))  # type: ignore[no-any-return]


def parameter_schema(make: Callable[[object], Any]) -> Any:
    """The pydantic core schema of a value object that travels as JSON (a flow's parameter).

    Args:
        make: Makes the object of itself or of its fields (raising `InvalidInputError`); the
            object's `to_json` gives its fields back.
    """
    from pydantic_core import core_schema

    return core_schema.no_info_plain_validator_function(
        make,
        serialization=core_schema.plain_serializer_function_ser_schema(
            lambda value: json.loads(value.to_json())
        ),
    )


def _spec_from_parameter(value: object) -> JobSpec:
    if isinstance(value, JobSpec):
        return value
    if isinstance(value, Mapping):
        try:
            return _from_json_fields(value)
        except (TypeError, AttributeError) as error:
            raise InvalidInputError(f"not the fields of a JobSpec: {error}") from error
    raise InvalidInputError(f"a JobSpec, or a mapping of its fields, not {value!r}")


def _from_json_fields(fields: Mapping[str, Any]) -> JobSpec:
    values = dict(fields)
    # Only the shapes the JSON can hold are turned back into objects; anything else (null, a
    # lone name) goes to the constructor as it is, which takes it or says why not.
    for key in ("input_datasets", "output_datasets"):
        if isinstance(values.get(key), list):
            values[key] = [
                DatasetConfig(**item) if isinstance(item, Mapping) else item for item in values[key]
            ]
    if isinstance(values.get("environment_variables"), Mapping):
        values["environment_variables"] = {
            name: SecretReference(**value) if isinstance(value, dict) else value
            for name, value in values["environment_variables"].items()
        }
    return JobSpec(**values)
