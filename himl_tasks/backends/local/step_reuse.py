"""Step reuse in a local pipeline: a step's identity, and whether an earlier run may stand in.

As AzureML's pipelines do, a step that allows reuse does not run when an earlier run of a
step with the same identity completed in this workspace (in any pipeline): it takes that
run's output versions. A step's identity is made of what decides what it computes, the same
parts as a job's identity (`himl_tasks.jobs.identity`):

- its job's settings (`run_plan.identity_fields`: script or module, arguments, environment,
  compute, variables, outputs, ... but not its display name, where its folder is, its tags or
  its experiment, which change nothing it computes; nor the step's name, so a step renamed,
  or the same job in another pipeline, is the same step);
- its snapshot's content (`snapshot.snapshot_digest`, taken when the pipeline is submitted);
- the exact version of each dataset it reads (its number, datastore and folder), an upstream
  step's output included: a step downstream of a step that ran again reads a new version, so
  it runs again too.

Before an earlier run stands in, what can be checked cheaply is: it is Completed (a failed
or canceled run never stands in); it ran itself (a run that took another's outputs points to
that run instead); each of its output versions is still in the registry, and its folder in
the datastore still lists the files it listed when the version was registered (the same
names, sizes and MD5s: one listing per version, no file read; `version_digest`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

from himl_tasks.datasets import ResolvedDataset
from himl_tasks.errors import HimlError
from himl_tasks.run_plan import RunPlan, identity_fields
from himl_tasks.storage import Datastore, RemoteFile

# Names the rules below: a change to what counts makes new identities, never a false match.
_IDENTITY_RULES = "himl-step-identity-1"


def step_identity(plan: RunPlan, snapshot_digest: str) -> str:
    """The step's identity (a hex digest): its job's settings, snapshot and input versions.

    Args:
        plan: The step's job as its run would be submitted: every input pinned to a version.
        snapshot_digest: The digest of the step's snapshot as selected at submission.
    """
    fields = identity_fields(plan.spec)
    for ignored in ("tags", "experiment"):
        fields.pop(ignored)
    digest = hashlib.sha256(_IDENTITY_RULES.encode())
    digest.update(json.dumps(fields, sort_keys=True, default=str).encode())
    for resolved in plan.inputs:
        # Where the version's files are, too: a version removed from the registry by hand
        # leaves its number to the next one registered, whose folder is another run's.
        where = f"{resolved.datastore}/{resolved.path}"
        digest.update(f"\0input {resolved.name}:{resolved.version} {where}".encode())
    digest.update(f"\0snapshot {snapshot_digest}".encode())
    return digest.hexdigest()


def outputs_intact(
    outputs: list[tuple[ResolvedDataset, str | None]],
    expected: tuple[str, ...],
    datastore: Callable[[str], Datastore],
) -> bool:
    """Whether an earlier run's output versions can stand in for a step's outputs.

    Args:
        outputs: The versions the earlier run registered, as the registry has them now, each
            with the digest of its files recorded when it was registered (None: none was).
        expected: The names of the step's output datasets.
        datastore: Gives the datastore of a name.
    """
    if sorted(output.name for output, _ in outputs) != sorted(expected):
        return False  # a version was removed from the registry
    for output, recorded in outputs:
        try:
            files = datastore(output.datastore).list(f"{output.path}/")
        except HimlError:  # the datastore is gone or cannot be read: do not guess
            return False
        if not files:
            return False  # its files were deleted
        if recorded is not None and _listing_digest(files, output.path) != recorded:
            return False  # a file was removed, added or changed since
    return True


def version_digest(store: Datastore, path: str) -> str | None:
    """A digest of a dataset version's files as its datastore lists them.

    It is made of each file's name (in the version's folder), size and MD5, as the listing
    gives them: no file is read beyond what listing does. None when the files cannot be
    listed (the version is then checked for having files only).
    """
    try:
        return _listing_digest(store.list(f"{path}/"), path)
    except HimlError:
        return None


def _listing_digest(files: list[RemoteFile], path: str) -> str:
    digest = hashlib.sha256()
    for item in sorted(files, key=lambda f: f.name):
        md5 = item.md5.hex() if item.md5 is not None else "-"
        digest.update(f"{item.name.removeprefix(path + '/')}\0{item.size}\0{md5}\n".encode())
    return digest.hexdigest()
