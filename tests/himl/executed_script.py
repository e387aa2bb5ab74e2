"""The hi-ml script the executing stand-ins run as an AzureML job, said once for v1 and v2.

Submitted with `--azureml`, it goes on past `submit_to_azure_if_needed` only inside the job:
it sums the numbers of its input dataset into its output dataset, its outputs folder and a
metric (`total`, 6 for the input `prepare_executed_script` uploads).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from himl_tasks.storage import Datastore
from himl_tasks.testing.files import write_tree

SUBMISSION_ARGUMENTS: dict[str, Any] = {
    "compute_cluster_name": "cpu-cluster",
    "input_datasets": ["himl_in"],
    "output_datasets": ["himl_out"],
    "wait_for_completion": True,
    "wait_for_completion_show_output": True,
}
"""What the script passes to `submit_to_azure_if_needed` (and a test calling it in-process)."""

_SCRIPT = """
import sys
from himl_tasks import submit_to_azure_if_needed

run_info = submit_to_azure_if_needed({sdk}**{arguments!r})
print("after the call, in AzureML:", run_info.is_running_in_azure_ml, sys.argv[1:])
total = sum(int(n) for n in (run_info.input_datasets[0] / "numbers.txt").read_text().split())
(run_info.output_datasets[0] / "total.txt").write_text(str(total))
run_info.output_folder.mkdir(exist_ok=True)
(run_info.output_folder / "total.txt").write_text(str(total))
run_info.run.log("total", total)
"""


def prepare_executed_script(
    project: Path, store: Datastore, monkeypatch: pytest.MonkeyPatch, *, strictly_aml_v1: bool
) -> Path:
    """Writes the script into the project, its input into `store`, and its command line.

    Returns the script; `sys.argv` is the script's with `--azureml --epochs 2`.
    """
    script = project / "sample.py"
    sdk = "strictly_aml_v1=True, " if strictly_aml_v1 else ""
    script.write_text(_SCRIPT.format(sdk=sdk, arguments=SUBMISSION_ARGUMENTS), encoding="utf-8")
    store.upload_folder(write_tree(project.parent / "raw", {"numbers.txt": b"1 2 3\n"}), "himl_in")
    monkeypatch.setattr(sys, "argv", [str(script), "--azureml", "--epochs", "2"])
    return script
