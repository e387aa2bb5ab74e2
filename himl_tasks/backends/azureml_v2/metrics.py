"""Reading a v2 job's metrics from MLflow, where AzureML v2 jobs log them.

AzureML gives each v2 job an MLflow run whose id is the job's name, in an MLflow experiment
named as the job's (MLFLOW_TRACKING_URI and MLFLOW_RUN_ID are set in the job). mlflow is
imported here only, inside the function: it takes seconds.
"""

from __future__ import annotations

import datetime

from himl_tasks.metric_tables import metric_value
from himl_tasks.runs import Metric

TEXT_METRIC_TAG_PREFIX = "himl.text."
"""MLflow keeps numbers only as metrics: a text value (a note, hi-ml's hyperparameter table) is
kept as the run's tag `himl.text.<name>`, its latest value (the in-job half writes it, this
module reads it back)."""


def read_mlflow_metrics(tracking_uri: str, run_id: str) -> list[Metric]:
    """Every value of every metric of one MLflow run, in the order logged.

    Each metric's history comes back by (timestamp, step); metrics are ordered by when each
    was first logged (ties keep MLflow's order). Text values, which MLflow keeps as the run's
    `himl.text.<name>` tags (the in-job half's rule), come last: each name's latest value,
    without a step, at the run's start (a tag has no time of its own).

    Args:
        tracking_uri: The MLflow tracking URI (a workspace's `azureml://...`, `sqlite:///...`).
        run_id: The MLflow run id (a v2 job's name).
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    run = client.get_run(run_id)
    names = list(run.data.metrics)
    histories = []
    for name in names:
        history = sorted(
            client.get_metric_history(run_id, name), key=lambda m: (m.timestamp, m.step)
        )
        if history:
            histories.append((history[0].timestamp, name, history))
    histories.sort(key=lambda item: item[0])
    numbers = [
        Metric(
            name,
            metric_value(each.value),
            int(each.step),
            datetime.datetime.fromtimestamp(each.timestamp / 1000, datetime.UTC),
        )
        for _, name, history in histories
        for each in history
    ]
    started = datetime.datetime.fromtimestamp((run.info.start_time or 0) / 1000, datetime.UTC)
    texts = [
        Metric(tag.removeprefix(TEXT_METRIC_TAG_PREFIX), str(value), None, started)
        for tag, value in sorted(run.data.tags.items())
        if tag.startswith(TEXT_METRIC_TAG_PREFIX)
    ]
    return numbers + texts
