"""Type stub of the private native extension ``ferrofix._core`` (use the public modules)."""

import numpy as np

__version__: str
build_profile: str  # "release" or "debug"

def num_threads() -> int: ...
def set_num_threads(n: int | None) -> None: ...
def default_num_threads(xdist_workers: int) -> int: ...
def is_forked_child() -> bool: ...
def uniform(shape: list[int], seed: int, stream: int, offset: int, dtype: str) -> np.ndarray: ...
def integers(
    low: int, high: int, shape: list[int], seed: int, stream: int, offset: int
) -> np.ndarray: ...
def causal_lm_loss(
    logits: np.ndarray,
    dtype: str,
    labels: np.ndarray,
    *,
    shift: bool,
    ignore_index: int,
    reduction: str,
    z_loss_scale: float,
    softcap: float | None,
    label_smoothing: float,
    num_items_in_batch: float | None,
    grad: np.ndarray | None = None,
    in_place: bool = False,
    return_lse: bool = False,
) -> tuple[float, np.ndarray | None, np.ndarray | None, int]: ...
def _raise_example_error(variant: str) -> None: ...
