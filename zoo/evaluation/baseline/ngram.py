"""Baselines for language modeling: add-k smoothed n-gram models over the data's own tokens.

An n-gram model predicts each token from the n - 1 tokens before it:

    p(w | c) = (count(c, w) + k) / (count(c) + k * V)

with counts taken on the train split and V the vocabulary of the spec (the network's softmax
width: every token gets probability, as in the network). k is chosen on the validation split,
where it minimises the NLL (scipy's bounded Brent search over log k).

The model is scored exactly as the network is (zoo/models/base.py TaskModel): on the same rows,
the same targets y, padding (`spec.pad_id`) left out, in nats per token (`loss`) and as the
perplexity `ppl = exp(loss)`. The context of target y[t] is x[t], x[t-1], ... within its row,
which is all the network sees too; before the row starts the context holds a sentinel id V (a
names row starts with <bos>, a text block in mid-text). Train rows are counted as the network
trains on them, so overlapping blocks (`data.stride`) count their shared tokens more than once.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from zoo.evaluation.baseline.base import BASELINES, Baseline, Split

K_BOUNDS = (1e-6, 1e2)


class NGram(Baseline):
    """An add-k smoothed n-gram language model of `order` n, with k chosen on the validation split."""

    supports = frozenset({("tokens", "language_modeling")})
    order: ClassVar[int]

    def events(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (context code, target) of every scored target: the non-padding positions of y."""
        V = int(self.spec.vocab_size)
        n, T = y.shape
        context = np.zeros((n, T), dtype=np.int64)
        for back in range(self.order - 1):  # the token `back` steps before x[t]'s position, or the sentinel V
            earlier = np.full((n, T), V, dtype=np.int64)
            earlier[:, back:] = x[:, : T - back]
            context = context * (V + 1) + earlier
        keep = y != self.spec.pad_id if self.spec.pad_id is not None else np.ones(y.shape, dtype=bool)
        return context[keep], y[keep].astype(np.int64)

    def counts(self, context: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the train counts count(c, w) and count(c) of each (context, target) event."""
        V = int(self.spec.vocab_size)
        return lookup(self.pairs, context * V + target), lookup(self.contexts, context)

    def fit(self, train: Split, val: Split) -> NGram:
        from scipy.optimize import minimize_scalar

        context, target = self.events(*train)
        self.pairs = np.unique(context * int(self.spec.vocab_size) + target, return_counts=True)
        self.contexts = np.unique(context, return_counts=True)
        pair, ctx = self.counts(*self.events(*val))
        found = minimize_scalar(lambda log_k: self.mean_nll(pair, ctx, math.exp(log_k)), method="bounded",
                                bounds=tuple(math.log(b) for b in K_BOUNDS), options={"xatol": 1e-4})
        self.k = math.exp(found.x)
        return self

    def mean_nll(self, pair: np.ndarray, ctx: np.ndarray, k: float) -> float:
        """Return the mean negative log-likelihood in nats of events with these train counts, for this k."""
        return float(np.mean(np.log(ctx + k * self.spec.vocab_size) - np.log(pair + k)))

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        loss = self.mean_nll(*self.counts(*self.events(x, y)), self.k)
        return {"loss": loss, "ppl": math.exp(loss) if loss < 50 else math.inf}  # as TaskModel logs them


def lookup(table: tuple[np.ndarray, np.ndarray], keys: np.ndarray) -> np.ndarray:
    """Return the count of each key in a (sorted unique keys, counts) table; 0 for a key not in it."""
    unique, counts = table
    if len(unique) == 0:
        return np.zeros(len(keys), dtype=np.int64)
    at = np.minimum(np.searchsorted(unique, keys), len(unique) - 1)
    return np.where(unique[at] == keys, counts[at], 0)


@BASELINES.register("unigram")
class Unigram(NGram):
    """Token frequencies alone: what the network gets from knowing no context at all."""

    order = 1


@BASELINES.register("bigram")
class Bigram(NGram):
    """The next token given the previous one (makemore's first model)."""

    order = 2


@BASELINES.register("trigram")
class Trigram(NGram):
    """The next token given the previous two."""

    order = 3
