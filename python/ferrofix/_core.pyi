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

# Pooled gradient buffers of the CPU loss (rust/ferrofix-py/src/buffer_pool.rs).
def gradient_buffer(shape: tuple[int, ...], dtype: str) -> np.ndarray: ...
def release_gradient_buffers() -> int: ...
def idle_gradient_bytes() -> int: ...

# Pooled packed-batch grids of pack_sequences (same file).
def release_packed_batch_buffers() -> int: ...
def idle_packed_batch_bytes() -> int: ...

# The memory check of outputs sized by an argument (rust/ferrofix-py/src/memory.rs).
def outputs_shortfall_reason(arrays: int, shape: list[int], element_bytes: int) -> str | None: ...

# CUDA backend (rust/ferrofix-cuda): probes, the NVRTC compile check, the loss launch.
def cuda_available() -> bool: ...
def cuda_driver_version() -> tuple[int, int]: ...
def cuda_devices() -> list[tuple[int, str, tuple[int, int], int, int, int]]: ...
def nvrtc_available() -> bool: ...
def nvrtc_version() -> tuple[int, int]: ...
def cuda_kernel_files() -> list[tuple[str, list[str]]]: ...
def cuda_compile(file: str, arch: str, *, cached: bool = False) -> tuple[bytes, str]: ...
def cuda_loss_plan(
    device: int,
    rows: int,
    vocab: int,
    dtype: str,
    splits: int | None = None,
    cluster: int | None = None,
) -> tuple[int, int, int, int, int]: ...
def cuda_causal_lm_loss(
    device: int,
    stream: int,
    dtype: str,
    logits_shape: list[int],
    labels_shape: list[int],
    *,
    shift: bool,
    ignore_index: int,
    reduction: str,
    z_loss_scale: float,
    softcap: float | None,
    label_smoothing: float,
    num_items_in_batch: float | None,
    logits: int,
    grad: int,
    labels: int,
    labels_i64: bool,
    row_loss: int,
    lse: int,
    counters: int,
    result: int,
    workspace: int,
    splits: int,
    threads: int,
    cluster: int,
    row_blocks: int,
) -> int | None: ...
def cuda_scale_gradient(
    device: int, stream: int, dtype: str, grad: int, elements: int, scale: int
) -> None: ...
def pack(
    lengths: np.ndarray, capacity: int, strategy: str, overflow: str
) -> dict[str, np.ndarray]: ...
def lower_bounds(lengths: np.ndarray, capacity: int) -> tuple[int, int]: ...
def pack_sequences(
    tokens: np.ndarray,
    lengths: np.ndarray,
    capacity: int,
    strategy: str,
    overflow: str,
    pad_token_id: int,
    ignore_index: int,
    labels: str,
) -> dict[str, np.ndarray | int]: ...
def check_packing(
    input_ids: np.ndarray,
    document_ids: np.ndarray,
    labels: np.ndarray | None,
    position_ids: np.ndarray | None,
    attention_mask: np.ndarray | None,
    cu_seqlens: list[tuple[str, np.ndarray]],
    max_seqlen: list[tuple[str, int]],
    seq_idx: np.ndarray | None,
    document_starts: np.ndarray | None,
    seq_lengths: np.ndarray | None,
    source_tokens: np.ndarray | None,
    source_lengths: np.ndarray | None,
    capacity: int | None,
    pad_token_id: int,
    ignore_index: int,
    convention: str,
) -> tuple[list[tuple[str, int, int, str]], int]: ...
def int_list_array(items: list[int]) -> np.ndarray | None: ...
def flatten_int_lists(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray] | None: ...
def pad_int_lists(
    rows: list[list[int]], width: int, fill: int, left: bool
) -> np.ndarray | None: ...
def _raise_example_error(variant: str) -> None: ...
def noise_schedule_check(kind: str, first: float, second: float) -> None: ...
def noise_schedule_eval(
    kind: str, first: float, second: float, quantities: list[str], x: np.ndarray, dtype: str
) -> list[np.ndarray]: ...
def mask_tokens(
    input_ids: np.ndarray,
    mask_prob: np.ndarray,
    mask_token_id: int,
    seed: int,
    protect_positions: np.ndarray | None = None,
    protect_ids: list[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]: ...
def uniform_corrupt(
    input_ids: np.ndarray,
    corrupt_prob: np.ndarray,
    vocab_size: int,
    seed: int,
    protect_positions: np.ndarray | None = None,
    protect_ids: list[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]: ...

class Tokenizer:
    """The native tokenizer behind ``ferrofix.tokenizers`` (immutable)."""

    kind: str
    @staticmethod
    def simple(
        vocab: list[str],
        special_tokens: list[str],
        unk_fallback: bool,
        add_bos: bool,
        add_eos: bool,
    ) -> Tokenizer: ...
    @staticmethod
    def char(
        alphabet: list[str],
        special_tokens: list[str],
        unk_fallback: bool,
        add_bos: bool,
        add_eos: bool,
    ) -> Tokenizer: ...
    @staticmethod
    def byte(special_tokens: list[str], add_bos: bool, add_eos: bool) -> Tokenizer: ...
    @staticmethod
    def bpe(
        merges: list[tuple[str, str]], special_tokens: list[str], add_bos: bool, add_eos: bool
    ) -> Tokenizer: ...
    @staticmethod
    def train_bpe(
        corpus: list[str],
        vocab_size: int,
        min_frequency: int,
        special_tokens: list[str],
        add_bos: bool,
        add_eos: bool,
    ) -> Tokenizer: ...
    def __len__(self) -> int: ...
    def tokens(self) -> list[str]: ...
    def token_bytes(self) -> list[bytes]: ...
    def special_tokens(self) -> list[str]: ...
    def flags(self) -> tuple[bool, bool, bool]: ...
    def role_ids(self) -> dict[str, int]: ...
    def merges(self) -> list[tuple[str, str]]: ...
    def token_id(self, token: str) -> int: ...
    def id_tokens(self, ids: np.ndarray) -> list[str]: ...
    def encode(self, text: str, add_special_tokens: bool) -> list[int]: ...
    def encode_array(self, text: str, add_special_tokens: bool) -> np.ndarray: ...
    def decode(self, ids: np.ndarray, skip_special_tokens: bool) -> str: ...
    def decode_rows(
        self, ids: np.ndarray, lengths: np.ndarray, skip_special_tokens: bool
    ) -> list[str]: ...
    def encode_batch(
        self,
        texts: list[str],
        *,
        add_special_tokens: bool,
        max_length: int | None,
        truncation: bool,
        truncation_side: str,
        width: str,
        pad_to_multiple_of: int | None,
        padding_side: str,
        pad_id: int,
        texts_arg: str = "text",
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...
