"""Preprocessing job: raw handwritten digits (CSV) -> normalised train / validation / test files.

Runs unchanged inside a local or AzureML job (the raw data is input dataset 0, the result goes
to output dataset 0) and as a plain script:
`python flows/jobs/preprocess.py --raw_folder RAW --output_folder OUT`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from himl_tasks.runtime import get_run_info, log_metrics

SPLITS = {"train": 0.7, "val": 0.15, "test": 0.15}


def main() -> None:
    """Reads the raw CSV, normalises the pixels, and writes stratified splits."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--raw_folder", type=Path, help="outside a job: the raw data folder")
    parser.add_argument("--output_folder", type=Path, help="outside a job: where to write")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    info = get_run_info()
    raw = args.raw_folder or (info.input_datasets[0] if info.input_datasets else None)
    out = args.output_folder or (info.output_datasets[0] if info.output_datasets else None)
    if raw is None or out is None:
        parser.error("outside a job, give --raw_folder and --output_folder")

    table = np.loadtxt(raw / "digits.csv", delimiter=",", skiprows=1, dtype=np.float32)
    pixels, labels = table[:, :-1] / 16.0, table[:, -1].astype(np.int64)
    print(f"read {len(labels)} images of {pixels.shape[1]} pixels from {raw}", flush=True)

    rng = np.random.default_rng(args.seed)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    for digit in np.unique(labels):  # stratified: each split has every digit in proportion
        indices = rng.permutation(np.flatnonzero(labels == digit))
        cut_train = round(len(indices) * SPLITS["train"])
        cut_val = cut_train + round(len(indices) * SPLITS["val"])
        parts["train"].append(indices[:cut_train])
        parts["val"].append(indices[cut_train:cut_val])
        parts["test"].append(indices[cut_val:])

    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, chunks in parts.items():
        chosen = rng.permutation(np.concatenate(chunks))
        np.savez(out / f"{name}.npz", pixels=pixels[chosen], labels=labels[chosen])
        counts[f"{name}_images"] = float(len(chosen))
    (out / "stats.json").write_text(json.dumps({"pixel_scale": 16.0, **counts}, indent=2))
    log_metrics(counts)
    print(f"wrote {counts} to {out}", flush=True)


if __name__ == "__main__":
    main()
