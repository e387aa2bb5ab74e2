"""The in-job API: what a script imports to find its data and report what it does.

The same script runs unchanged inside a local run, inside an AzureML run, and as a plain
`python script.py`:

```python
from himl_tasks.runtime import get_run_info, log_metric, report_progress

run_info = get_run_info()
data_folder = run_info.input_datasets[0]
for epoch in range(10):
    ...
    log_metric("loss", loss, step=epoch)
    report_progress(epoch + 1, 10)  # a progress bar where the run is watched
```

This package is a leaf: it imports no backend, nor Prefect, AzureML or torch up front. A job
learns which backend it runs under from the variables that backend set when it submitted the job
(`himl_tasks.job_variables`), and the backend's in-job half (`himl_tasks.backends.<name>.in_job`)
is imported by name (`in_job_platform`).
"""

from __future__ import annotations

from himl_tasks.runtime.distributed import (
    is_global_rank_zero,
    is_local_rank_zero,
    set_environment_variables_for_multi_node,
    torch_barrier,
)
from himl_tasks.runtime.himl_run_context import RUN_CONTEXT
from himl_tasks.runtime.in_job_platform import InJobPlatform, current_run, is_running_in_azure_ml
from himl_tasks.runtime.metrics import log_metric, log_metrics, report_progress
from himl_tasks.runtime.recovery import find_latest_recovery_checkpoint
from himl_tasks.runtime.run_context import AzureRunInfo, RunContext
from himl_tasks.runtime.run_info import DatasetSource, get_run_info

__all__ = [
    "RUN_CONTEXT",
    "AzureRunInfo",
    "DatasetSource",
    "InJobPlatform",
    "RunContext",
    "current_run",
    "find_latest_recovery_checkpoint",
    "get_run_info",
    "is_global_rank_zero",
    "is_local_rank_zero",
    "is_running_in_azure_ml",
    "log_metric",
    "log_metrics",
    "report_progress",
    "set_environment_variables_for_multi_node",
    "torch_barrier",
]
