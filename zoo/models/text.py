"""Text generation and text encoding shared by every model that reads tokens.

A model mixes in `TextModel` before its base class:

    @MODELS.register("rnn")
    class RNN(TextModel, TaskModel):
        def forward(self, x):            # (B, T) token ids -> (B, T, V) next-token logits (LM)
            ...                          #                  or (B, num_classes) logits (classifier)

and gets, from the tokenizer serialised in its DataSpec (so it works from a checkpoint alone):

- `generate(prompt="", *, n=1, max_new_tokens=None, temperature=1.0, top_k=None, seed=None)`
  -> list of n strings (each starts with the prompt), for language models (`zoo sample`);
- `make_samples()` -> {"text": [...]} a few generations, written each validation epoch by the
  Samples callback (seeded with the epoch, so sampling never disturbs the training RNG);
- `encode_text(lines)` -> (N, T) padded ids, for token classifiers (`zoo predict file.txt`);
- `tokenizer`, the `tokenizers.Tokenizer` of the data (trained by zoo/data/tokenizer.py, read by zoo.spec).

The sequence convention of zoo's text data: a text (a name, a document) starts with the `<bos>`
token and ends with `<eos>`; padding uses `spec.pad_id`, which the LM loss ignores. Generation
therefore starts from `<bos>` + prompt and stops at `<eos>`. The context is cropped to the last
`context_length` tokens (the data's T, `spec.input_shape[0]`) because positional models cannot
read more and the other models were trained on windows of that length.

A model overrides `next_token_logits(idx)` when it can do better than `self(idx)[:, -1]`.
"""

from __future__ import annotations

from typing import Any

import torch

from zoo.errors import ZooError


class TextModel:
    """Mixin adding generation (LMs) and text encoding (classifiers) to a model with a token DataSpec."""

    spec: Any

    @property
    def context_length(self) -> int:
        """The longest token sequence the model reads; generation crops its context to it."""
        return int(self.spec.input_shape[0])

    @property
    def tokenizer(self) -> Any:
        """The data's tokenizer, rebuilt from the spec on first use; None when the data has none.

        (None rather than an error: tracers such as `torch.jit.trace` read every property.)"""
        if self.spec.tokenizer is None:
            return None
        if getattr(self, "_tokenizer", None) is None:
            from zoo.spec import load_tokenizer

            self._tokenizer = load_tokenizer(self.spec.tokenizer)
        return self._tokenizer

    def next_token_logits(self, idx: torch.Tensor) -> torch.Tensor:
        """Return (B, V) logits of the token that follows each row of `idx` (B, T)."""
        return self(idx)[:, -1, :]

    def _require(self, task: str, what: str) -> None:
        if self.spec.modality != "tokens" or self.spec.task != task:
            raise ZooError(f"{what} needs a tokens {task} model; this '{self.registry_name}' was trained for "
                           f"{self.spec.modality} {self.spec.task}")
        if self.spec.tokenizer is None:
            raise ZooError("This model's data has no tokenizer, so it cannot read or write text")

    @torch.no_grad()
    def generate(self, prompt: str = "", *, n: int = 1, max_new_tokens: int | None = None, temperature: float = 1.0,
                 top_k: int | None = None, seed: int | None = None) -> list[str]:
        """Return `n` texts sampled after `prompt` (temperature 0 = greedy), each including the prompt."""
        from zoo.spec import decode, encode, special_id

        self._require("language_modeling", "generate")
        if n < 1:
            raise ZooError(f"n must be at least 1, got {n}")
        if temperature < 0:
            raise ZooError(f"temperature must be >= 0, got {temperature}")
        if top_k is not None and top_k < 1:
            raise ZooError(f"top_k must be at least 1 (or unset for no limit), got {top_k}")
        if max_new_tokens is not None and max_new_tokens < 0:
            raise ZooError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
        tok = self.tokenizer
        bos, eos = special_id(tok, "bos"), special_id(tok, "eos")
        start = ([bos] if bos is not None else []) + encode(tok, prompt)
        if not start:
            raise ZooError("An empty prompt needs a tokenizer with a <bos> token; give a prompt")
        max_new_tokens = self.context_length if max_new_tokens is None else max_new_tokens
        device = next(self.parameters()).device
        gen = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
        idx = torch.tensor([start] * n, dtype=torch.long, device=device)  # (n, L)
        done = torch.zeros(n, dtype=torch.bool, device=device)
        was_training = self.training
        self.eval()
        try:
            for _ in range(max_new_tokens):
                logits = self.next_token_logits(idx[:, -self.context_length :]).float()  # (n, V)
                if temperature == 0:
                    nxt = logits.argmax(-1)
                else:
                    logits = logits / temperature
                    if top_k is not None and top_k < logits.shape[-1]:
                        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
                        logits = logits.masked_fill(logits < kth, float("-inf"))
                    nxt = torch.multinomial(logits.softmax(-1), 1, generator=gen).squeeze(1)
                if eos is not None:
                    nxt = torch.where(done, torch.full_like(nxt, eos), nxt)  # finished rows stay finished
                    done |= nxt == eos
                idx = torch.cat([idx, nxt[:, None]], dim=1)
                if done.all():
                    break
        finally:
            self.train(was_training)
        texts = []
        for row in idx[:, 1 if bos is not None else 0 :].tolist():
            if eos is not None and eos in row:
                row = row[: row.index(eos)]
            texts.append(decode(tok, row))
        return texts

    def make_samples(self) -> dict[str, Any]:
        """Return a few generated texts for the Samples callback (nothing for classifiers)."""
        if self.spec.modality != "tokens" or self.spec.task != "language_modeling" or self.spec.tokenizer is None:
            return {}
        epoch = self.current_epoch if getattr(self, "_trainer", None) is not None else 0
        return {"text": self.generate(n=8, max_new_tokens=min(self.context_length, 200), seed=epoch)}

    def encode_text(self, lines: list[str]) -> torch.Tensor:
        """Return (N, T) token ids of text lines, padded and cut as the classifier was trained."""
        from zoo.spec import encode_padded

        self._require("classification", "encode_text")
        return encode_padded(self.tokenizer, lines, self.context_length, self.spec.pad_id or 0)
