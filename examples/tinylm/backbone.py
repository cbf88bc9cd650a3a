"""The shared transformer: token embeddings, pre-norm attention blocks with rotary position
embeddings, an LM head. Causal or bidirectional; packed rows are masked per document."""

from __future__ import annotations

import math

import torch
from torch import nn


def rotate(x: torch.Tensor, positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Rotary embedding on the first ``dim`` features of each head. x: (B, H, L, D)."""
    half = dim // 2
    freqs = 10_000 ** (-torch.arange(half, dtype=torch.float32, device=x.device) / half)
    angles = positions[:, None, :, None].float() * freqs  # (B, 1, L, half)
    cos, sin = angles.cos(), angles.sin()
    first, second, rest = x[..., :half], x[..., half:dim], x[..., dim:]
    return torch.cat([first * cos - second * sin, first * sin + second * cos, rest], dim=-1)


class Block(nn.Module):
    def __init__(self, d_model: int, nhead: int, dropout: float, rotary_emb_dim: int) -> None:
        super().__init__()
        self.nhead, self.rotary_emb_dim = nhead, rotary_emb_dim
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, allowed: torch.Tensor, positions: torch.Tensor
    ) -> torch.Tensor:
        b, length, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, length, 3, self.nhead, -1).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, L, D)
        q = rotate(q, positions, self.rotary_emb_dim)
        k = rotate(k, positions, self.rotary_emb_dim)
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        scores = scores.masked_fill(~allowed[:, None], float("-inf"))
        # A query with nothing to attend to (a padding row) gets zeros, not NaN.
        weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)
        attended = (weights @ v).transpose(1, 2).reshape(b, length, d)
        x = x + self.dropout(self.out(attended))
        return x + self.dropout(self.mlp(self.norm2(x)))


class TinyTransformer(nn.Module):
    """``forward(input_ids, attention_mask=None, position_ids=None, document_ids=None)`` ->
    logits (B, L, num_embeddings). Keys and values are restricted to unmasked tokens of the
    same document (and to earlier positions when ``causal``)."""

    causal = False

    def __init__(
        self,
        num_embeddings: int,
        d_model: int,
        num_layers: int,
        nhead: int,
        dropout: float,
        rotary_emb_dim: int,
        max_length: int,
    ) -> None:
        super().__init__()
        if rotary_emb_dim > d_model // nhead or rotary_emb_dim % 2:
            raise ValueError(f"rotary_emb_dim must be even and <= {d_model // nhead}")
        self.max_length = max_length
        self.embed = nn.Embedding(num_embeddings, d_model)
        self.blocks = nn.ModuleList(
            Block(d_model, nhead, dropout, rotary_emb_dim) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, num_embeddings)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        document_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        b, length = input_ids.shape
        if length > self.max_length:
            raise ValueError(f"sequence length {length} exceeds max_length {self.max_length}")
        device = input_ids.device
        if attention_mask is None:
            attention_mask = torch.ones(b, length, dtype=torch.bool, device=device)
        if position_ids is None:
            position_ids = torch.arange(length, device=device).expand(b, length)
        keys = attention_mask.bool()[:, None, :]  # (B, 1, L)
        allowed = keys.expand(b, length, length)
        if document_ids is not None:
            allowed = allowed & (document_ids[:, :, None] == document_ids[:, None, :])
        if self.causal:
            allowed = allowed & torch.ones(length, length, dtype=torch.bool, device=device).tril()
        x = self.embed(input_ids)
        for block in self.blocks:
            x = block(x, allowed, position_ids)
        return self.head(self.norm(x))

    def get_named_params_for_weight_decay(self) -> list[tuple[str, nn.Parameter]]:
        """Matrices decay; biases, norms and embeddings do not."""
        return [(n, p) for n, p in self.named_parameters() if self._decays(n, p)]

    def get_named_params_for_no_weight_decay(self) -> list[tuple[str, nn.Parameter]]:
        return [(n, p) for n, p in self.named_parameters() if not self._decays(n, p)]

    @staticmethod
    def _decays(name: str, parameter: nn.Parameter) -> bool:
        return parameter.ndim == 2 and not name.startswith("embed")
