"""hi-ml's user contract: its functions, names and semantics, on any backend."""

from typing import TYPE_CHECKING, Any

from himl_tasks.himl.run_context import RUN_CONTEXT

if TYPE_CHECKING:
    from himl_tasks.himl.lightning_logging import AzureMLLogger, log_learning_rate, log_on_epoch

# PyTorch Lightning takes seconds to import: its names are loaded when first used.
_LIGHTNING_NAMES = frozenset({"AzureMLLogger", "log_learning_rate", "log_on_epoch"})


def __getattr__(name: str) -> Any:
    if name in _LIGHTNING_NAMES:
        from himl_tasks.himl import lightning_logging

        return getattr(lightning_logging, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "RUN_CONTEXT",
    "AzureMLLogger",
    "log_learning_rate",
    "log_on_epoch",
]
