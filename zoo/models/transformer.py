"""Transformer in the nanoGPT style: one set of pre-LN blocks for every modality.

Only the way inputs become a sequence of vectors (the stem) and the way that sequence becomes
outputs (the head) change with the data:

    tokens LM     token + position embeddings -> causal blocks -> LM head at every position
    tokens cls    [CLS] + token + position embeddings, padding masked -> blocks -> pool -> head
    image (ViT)   p x p patches -> linear -> [CLS] + positions -> blocks -> pool -> head
    tabular (FT)  one token per feature (x_i * w_i + b_i) + [CLS] -> blocks -> pool -> head

Attention is `F.scaled_dot_product_attention`, which picks flash / memory-efficient kernels on a
GPU. The causal LM maps one-to-one onto Hugging Face's GPT-2 (see zoo/hub/export.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.bounds import PositiveInt, Probability
from zoo.errors import ConfigError, choose
from zoo.models.base import TaskModel
from zoo.models.text import TextModel
from zoo.registry import MODELS

POSITIONS = ("learned", "sinusoidal")
POOLINGS = ("cls", "mean")


@dataclass
class TransformerConfig:
    """The shape of the trunk, as primitives."""

    d_model: int = 128
    n_layer: int = 4
    n_head: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.1
    bias: bool = True  # in Linear and LayerNorm layers (GPT-2 has them; a little faster without)
    causal: bool = False


class SelfAttention(nn.Module):
    """Multi-head self-attention with one fused q/k/v projection."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        if cfg.d_model % cfg.n_head:
            raise ConfigError(f"model.d_model ({cfg.d_model}) must be divisible by model.n_head ({cfg.n_head})")
        self.n_head, self.causal, self.dropout = cfg.n_head, cfg.causal, cfg.dropout
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=cfg.bias)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        # With no mask and is_causal, SDPA can use the flash kernel; `mask` (B, 1, 1, T) hides padding.
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0,
                                           is_causal=self.causal and mask is None)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-assemble the heads: (B, T, C)
        return self.resid_drop(self.proj(y))


class MLP(nn.Module):
    """Position-wise feed-forward layer: Linear -> GELU -> Linear."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, cfg.mlp_ratio * cfg.d_model, bias=cfg.bias)
        self.act = nn.GELU()  # exact GELU: GPT-2's config then says activation_function="gelu"
        self.proj = nn.Linear(cfg.mlp_ratio * cfg.d_model, cfg.d_model, bias=cfg.bias)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(self.act(self.fc(x))))


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.attn = SelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), mask)
        return x + self.mlp(self.ln_2(x))


class Trunk(nn.Module):
    """The stack of blocks and the final LayerNorm: (B, T, C) -> (B, T, C)."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model, bias=cfg.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.drop(x)
        for block in self.blocks:
            x = block(x, mask)
        return self.ln_f(x)


def sinusoidal_table(n: int, d: int) -> torch.Tensor:
    """Return the (n, d) fixed sine/cosine position table of "Attention Is All You Need"."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10_000.0) / d))
    table = torch.zeros(n, d)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)[:, : d // 2]
    return table


class Positions(nn.Module):
    """Position vectors for sequences of up to `n` items: learned or fixed sinusoidal."""

    def __init__(self, kind: str, n: int, d: int) -> None:
        super().__init__()
        self.kind = choose("positions", kind, POSITIONS)
        if self.kind == "learned":
            self.weight = nn.Parameter(torch.randn(n, d) * 0.02)
        else:
            self.register_buffer("weight", sinusoidal_table(n, d), persistent=False)

    def forward(self, t: int) -> torch.Tensor:
        return self.weight[:t]  # (T, C), broadcast over the batch


class FeatureTokens(nn.Module):
    """FT-Transformer feature tokenizer: feature i becomes x_i * w_i + b_i, so no positions are needed."""

    def __init__(self, n_features: int, d: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_features, d) * 0.02)
        self.bias = nn.Parameter(torch.zeros(n_features, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(-1) * self.weight + self.bias  # (B, F) -> (B, F, C)


@MODELS.register("transformer")
class Transformer(TextModel, TaskModel):
    """Transformer: GPT-style causal LM, [CLS] text classifier, ViT for images, FT-Transformer for tables.

    Args:
        d_model: width of every token vector.
        n_layer: number of pre-LN blocks.
        n_head: attention heads (d_model must be divisible by it).
        mlp_ratio: hidden width of the feed-forward layer, as a multiple of d_model.
        dropout: dropout on embeddings, attention weights and residual branches.
        bias: use biases in Linear and LayerNorm layers.
        positions: learned or sinusoidal position vectors (tokens and image patches).
        pooling: cls (a learned [CLS] token) or mean (average of the non-padding tokens) for classifiers.
        patch_size: side of the square image patches (ViT); must divide the image height and width.
        tie_weights: share the token embedding with the LM head (language modeling only).
    """

    supports = frozenset({("tokens", "language_modeling"), ("tokens", "classification"), ("image", "classification"),
                          ("tabular", "classification"), ("tabular", "regression")})

    def __init__(
        self,
        spec: dict[str, Any],
        *,
        d_model: PositiveInt = 128,
        n_layer: PositiveInt = 4,
        n_head: PositiveInt = 4,
        mlp_ratio: PositiveInt = 4,
        dropout: Probability = 0.1,
        bias: bool = True,
        positions: str = "learned",
        pooling: str = "cls",
        patch_size: PositiveInt = 2,
        tie_weights: bool = True,
        optim: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(spec, optim)
        self.save_hyperparameters()
        choose("pooling", pooling, POOLINGS)
        s = self.spec
        self.is_lm = s.task == "language_modeling"
        self.cfg = TransformerConfig(d_model, n_layer, n_head, mlp_ratio, dropout, bias, causal=self.is_lm)
        self.pooling = pooling
        use_cls = pooling == "cls" and not self.is_lm
        self.cls = nn.Parameter(torch.zeros(1, 1, d_model)) if use_cls else None  # learned [CLS] vector
        self._build_stem(positions, patch_size)
        if self.is_lm:
            self.head = nn.Linear(d_model, s.vocab_size, bias=False)
            if tie_weights:
                self.head.weight = self.tok_emb.weight  # one (V, C) matrix for input and output
        else:
            self.head = nn.Linear(d_model, s.output_dim)
        self.trunk = Trunk(self.cfg)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2: scale residual projections by depth
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))

    def _build_stem(self, positions: str, patch_size: int) -> None:
        """Create the input embedding of this modality (and the position vectors it needs)."""
        s, d = self.spec, self.cfg.d_model
        if s.modality == "tokens":
            n = s.input_shape[0]
            self.tok_emb = nn.Embedding(s.vocab_size, d)
        elif s.modality == "image":
            c, h, w = s.input_shape
            if h % patch_size or w % patch_size:
                raise ConfigError(f"model.patch_size={patch_size} must divide the image size {h}x{w}")
            n = (h // patch_size) * (w // patch_size)
            self.patch = nn.Conv2d(c, d, patch_size, stride=patch_size)  # a linear map of each patch
        else:
            self.features = FeatureTokens(s.input_shape[0], d)  # feature identity is in its own weights
            return
        self.pos = Positions(positions, n + (self.cls is not None), d)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding: bool = True) -> int:
        """Return the parameter count; by default without position vectors (as in nanoGPT's 6N FLOPs rule)."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding and hasattr(self, "pos") and isinstance(self.pos.weight, nn.Parameter):
            n -= self.pos.weight.numel()
        return n

    # -- forward -------------------------------------------------------------------------------
    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return the input sequence (B, N, C) and the padding mask (B, N) (True = real item) or None."""
        mask = None
        if self.spec.modality == "tokens":
            h = self.tok_emb(x)  # (B, T) -> (B, T, C)
            if not self.is_lm and self.spec.pad_id is not None:
                mask = x != self.spec.pad_id
        elif self.spec.modality == "image":
            h = self.patch(self.standardize(x)).flatten(2).transpose(1, 2)  # (B, C, H, W) -> (B, N, C)
        else:
            h = self.features(self.standardize(x))  # (B, F) -> (B, F, C)
        if self.cls is not None:
            h = torch.cat([self.cls.expand(h.shape[0], -1, -1), h], dim=1)  # (B, 1 + N, C)
            if mask is not None:
                mask = torch.cat([mask.new_ones(h.shape[0], 1), mask], dim=1)
        if hasattr(self, "pos"):
            h = h + self.pos(h.shape[1])
        return h, mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, mask = self.embed(x)
        if self.is_lm:
            return self.head(self.trunk(h))  # (B, T, C) -> (B, T, V) next-token logits
        if mask is not None:
            mask[:, 0] = True  # an all-padding row would give NaN attention; let it see its first item
        h = self.trunk(h, None if mask is None else mask[:, None, None, :])  # mask: (B, 1, 1, N) over keys
        if self.pooling == "cls":
            pooled = h[:, 0]
        elif mask is None:
            pooled = h.mean(1)
        else:
            m = mask.unsqueeze(-1).to(h.dtype)  # (B, N, 1)
            pooled = (h * m).sum(1) / m.sum(1)
        return self.head(pooled)  # (B, C) -> (B, out)
