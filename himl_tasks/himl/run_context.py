"""hi-ml's `RUN_CONTEXT`, where hi-ml's names live (`himl_tasks.himl`).

It is defined in the in-job API, `himl_tasks.runtime.himl_run_context`, so that
`get_run_info().run` and `submit_to_azure_if_needed(...).run` inside a job are this same object.
"""

from himl_tasks.runtime.himl_run_context import (
    RUN_CONTEXT,
    OfflineRun,
    RecordingRun,
    RunContextProxy,
)

__all__ = ["RUN_CONTEXT", "OfflineRun", "RecordingRun", "RunContextProxy"]
