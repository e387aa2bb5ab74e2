"""himl-tasks: run machine learning work on Azure Machine Learning from Prefect.

The public names are listed once, in `__init__.pyi` beside this file; each is imported on first
use, so that `import himl_tasks` stays fast and loads no SDK (azureml, prefect, torch, aiohttp).
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
