"""`zoo export --ckpt CKPT --format hf OUT/`: a zoo language model as a Hugging Face folder.

The `transformer` LM is a GPT-2 in all but parameter names (pre-LN blocks, fused q/k/v, exact
GELU, learned or fixed position table, optionally tied head), so its weights map one-to-one onto
`GPT2LMHeadModel`; an `hf_transformer` GPT-2 is saved as it is. The data's tokenizer (from the
DataSpec) becomes a `PreTrainedTokenizerFast` that adds `<bos>` in front of a prompt, as zoo's
own `generate` does. Afterwards:

    from transformers import pipeline
    pipeline("text-generation", model="OUT/")("ma", max_new_tokens=10, do_sample=True)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from zoo.errors import ZooError

FORMATS = ("hf",)


def gpt2_config(model: Any) -> Any:
    """Return the GPT2Config equivalent to a zoo `transformer` language model."""
    from transformers import GPT2Config

    from zoo.spec import special_id

    hp, tok = model.hparams, model.tokenizer if model.spec.tokenizer else None
    ids = {role: special_id(tok, role) if tok else None for role in ("bos", "eos", "pad")}
    return GPT2Config(
        vocab_size=model.spec.vocab_size, n_positions=model.context_length, n_embd=hp.d_model, n_layer=hp.n_layer,
        n_head=hp.n_head, n_inner=hp.mlp_ratio * hp.d_model, activation_function="gelu", layer_norm_epsilon=1e-5,
        resid_pdrop=hp.dropout, embd_pdrop=hp.dropout, attn_pdrop=hp.dropout, tie_word_embeddings=hp.tie_weights,
        bos_token_id=ids["bos"], eos_token_id=ids["eos"], pad_token_id=ids["pad"],
    )


def gpt2_state_dict(model: Any) -> dict[str, torch.Tensor]:
    """Return the zoo transformer's weights under GPT2LMHeadModel's names (Linear -> Conv1D transposed)."""

    def bias(linear_or_norm: Any, n: int) -> torch.Tensor:  # GPT-2 always has biases; bias=False means zeros
        return linear_or_norm.bias.detach() if linear_or_norm.bias is not None else torch.zeros(n)

    d = model.hparams.d_model
    sd = {"transformer.wte.weight": model.tok_emb.weight, "transformer.wpe.weight": model.pos.weight,
          "transformer.ln_f.weight": model.trunk.ln_f.weight, "transformer.ln_f.bias": bias(model.trunk.ln_f, d),
          "lm_head.weight": model.head.weight}
    for i, b in enumerate(model.trunk.blocks):
        p = f"transformer.h.{i}."
        sd.update({
            p + "ln_1.weight": b.ln_1.weight, p + "ln_1.bias": bias(b.ln_1, d),
            p + "attn.c_attn.weight": b.attn.qkv.weight.t(), p + "attn.c_attn.bias": bias(b.attn.qkv, 3 * d),
            p + "attn.c_proj.weight": b.attn.proj.weight.t(), p + "attn.c_proj.bias": bias(b.attn.proj, d),
            p + "ln_2.weight": b.ln_2.weight, p + "ln_2.bias": bias(b.ln_2, d),
            p + "mlp.c_fc.weight": b.mlp.fc.weight.t(), p + "mlp.c_fc.bias": bias(b.mlp.fc, b.mlp.fc.out_features),
            p + "mlp.c_proj.weight": b.mlp.proj.weight.t(), p + "mlp.c_proj.bias": bias(b.mlp.proj, d),
        })
    return {k: v.detach().contiguous().clone() for k, v in sd.items()}


def to_gpt2(model: Any) -> Any:
    """Return a `GPT2LMHeadModel` (eval mode) with the zoo transformer LM's weights."""
    from transformers import GPT2LMHeadModel

    hf = GPT2LMHeadModel(gpt2_config(model))
    sd = gpt2_state_dict(model)
    missing, unexpected = hf.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not (k == "lm_head.weight" and model.hparams.tie_weights)]
    if missing or unexpected:  # a transformers version with other names must fail loudly, not silently
        raise ZooError(f"GPT-2 weight mapping is incomplete: missing {missing}, unexpected {unexpected}")
    if model.hparams.tie_weights:
        hf.tie_weights()
    return hf.eval()


def hf_tokenizer(spec_tokenizer: str) -> Any:
    """Return a `PreTrainedTokenizerFast` from a DataSpec tokenizer; it prepends `<bos>` when the vocab has one."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    from zoo.spec import ROLE_TOKENS, load_tokenizer, special_id

    tok = load_tokenizer(spec_tokenizer)
    names = {role: tok.id_to_token(i) for role in ROLE_TOKENS if (i := special_id(tok, role)) is not None}
    if "bos" in names and names["bos"] == "<bos>":  # zoo's own tokenizers: a text starts with <bos>
        tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", tok.token_to_id("<bos>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, **{f"{r}_token": t for r, t in names.items()})


def export_hf(model: Any, out: str | Path) -> Path:
    """Save a zoo language model and its tokenizer as a Hugging Face causal-LM folder; return the folder."""
    name = getattr(model, "registry_name", type(model).__name__)
    if model.spec.modality != "tokens" or model.spec.task != "language_modeling":
        raise ZooError(f"--format hf exports token language models; this '{name}' is {model.spec.modality} "
                       f"{model.spec.task}")
    if name == "transformer":
        hf = to_gpt2(model)
    elif name == "hf_transformer":
        hf = model.net.eval()
    else:
        raise ZooError(f"--format hf supports the 'transformer' and 'hf_transformer' models, not '{name}'")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    hf.save_pretrained(out)
    if model.spec.tokenizer:
        hf_tokenizer(model.spec.tokenizer).save_pretrained(out)
    return out


def export(ckpt: str, fmt: str, out: str) -> Path:
    """Load a checkpoint (or pretrained name) and export it in format `fmt` to `out`."""
    from zoo.errors import choose
    from zoo.hub.pretrained import load

    choose("export format", fmt, FORMATS)
    target = Path(out)
    if target.is_file() or (target.is_dir() and any(target.iterdir())):
        raise ZooError(f"{target} already exists{' and is not empty' if target.is_dir() else ''}: "
                       "export refuses to overwrite; give a new or empty folder")
    return export_hf(load(ckpt), out)
