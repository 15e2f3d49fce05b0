"""The dataset errors: a missing or malformed dataset directory, named with its expected layout."""
from __future__ import annotations

from pathlib import Path


class DatasetError(ValueError):
    """A dataset directory, split list or sample file that is missing or malformed.

    The message names the offending file and lists the layout the loader expects.
    """

    def __init__(self, dataset: str, root: str | Path, problem: str, layout: str):
        self.dataset = dataset
        self.root = Path(root)
        self.problem = problem
        super().__init__(f"{dataset} dataset at {root}: {problem}\n"
                         f"expected layout:\n{layout}")


class SampleError(ValueError):
    """A sample whose files exist but cannot be loaded (corrupt, wrong shape or size).

    The message names the dataset, the sample id and the split list it came from, then what
    went wrong (which itself names the file).
    """
