"""`zoo export --ckpt CKPT_OR_NAME --format onnx|torchscript|hf OUT/`: a model in a deployable format.

One function per format, each writing its files into a folder:

- `export_onnx`: OUT/model.onnx through `torch.onnx.export` (the torch.export-based exporter),
  with a dynamic batch axis and, for language models that allow it, a dynamic sequence axis;
- `export_torchscript`: OUT/model.pt through `torch.jit.trace`, for `torch.jit.load` without zoo;
- `export_hf`: a Hugging Face folder (`save_pretrained`) for language models that map onto a
  transformers class (below).

The ONNX and TorchScript files hold the graphs of zoo/hub/graphs.py: they take the same raw
inputs as `predict_step` (the standardisation with the train split's statistics is inside) or,
for a VAE or GAN, noise and labels, and return what the Python API returns. Each file is checked
against the model on fresh inputs before the export counts as done. `export` adds the model card
as a Hugging Face README.md and, for text models, tokenizer.json; it writes into a new folder
beside OUT and renames it into place, so OUT is never half-written, and it refuses to replace an
existing file or a non-empty folder unless told to (`force`, `zoo export --force`).

The `transformer` LM is a GPT-2 in all but parameter names (pre-LN blocks, fused q/k/v, exact
GELU, learned or fixed position table, optionally tied head), so its weights map one-to-one onto
`GPT2LMHeadModel`; an `hf_transformer` GPT-2 is saved as it is. The data's tokenizer (from the
DataSpec) becomes a `PreTrainedTokenizerFast` that adds `<bos>` in front of a prompt, as zoo's
own `generate` does. Afterwards:

    from transformers import pipeline
    pipeline("text-generation", model="OUT/")("ma", max_new_tokens=10, do_sample=True)
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from zoo.errors import ZooError, choose
from zoo.hub.graphs import Graph, graph

ATOL, RTOL = 1e-4, 1e-3  # exported outputs vs the model's, on fresh inputs


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


def export_onnx(model: Any, out: str | Path) -> Path:
    """Write the model's inference graph to OUT/model.onnx and check it with onnxruntime; return the file."""
    missing = [m for m in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise ZooError(f"--format onnx needs {', '.join(missing)}: pip install 'zoo[export]'")
    g = graph(model)
    name = model.registry_name
    if name == "rnn" and model.spec.modality == "tokens" and model.spec.task == "classification":
        raise ZooError("Cannot export an 'rnn' token classifier to ONNX: it packs padded sequences "
                       "(pack_padded_sequence), which torch.export cannot trace; use --format torchscript")
    program, sequence = onnx_program(g, name)
    if sequence:
        g.about = g.about.replace(f"sequence <= {sequence}", f"sequence = {sequence}, right-padded")
    program.model.doc_string = g.about
    program.model.metadata_props.update(metadata(model, g))
    path = Path(out) / "model.onnx"
    program.save(str(path))
    check_export(g, path, lambda inputs: onnx_outputs(path, inputs), sequence)
    return path


def onnx_program(g: Graph, name: str) -> tuple[Any, int | None]:
    """Return (the ONNX program of a graph, its fixed sequence length or None) with named dynamic axes.

    A language model's sequence axis stays dynamic when torch.export can keep it so; recurrent
    layers unroll over time there, so their sequence is fixed at the context length instead
    (right-pad a shorter prompt: output t reads only tokens <= t).
    """
    from torch.export import Dim

    dims = {"batch": Dim("batch")}
    if g.max_sequence:
        dims["sequence"] = Dim("sequence", min=2, max=g.max_sequence)
    recurrent = any(isinstance(m, torch.nn.RNNBase) for m in g.module.modules())
    tries = [None] if not g.max_sequence else [g.max_sequence] if recurrent else [None, g.max_sequence]
    for fixed in tries:
        inputs = g.inputs(sequence=fixed)
        labels = {n: {a: label for a, label in g.axes[n].items() if not (fixed and label == "sequence")}
                  for n in inputs}
        shapes = {n: {a: dims[label] for a, label in axes.items()} for n, axes in labels.items()}
        try:
            with warnings.catch_warnings(), quiet():
                warnings.simplefilter("ignore")
                ep = torch.export.export(g.module, (), kwargs=inputs, dynamic_shapes=shapes, strict=False)
                program = torch.onnx.export(ep, (), None, kwargs=inputs, input_names=list(inputs),
                                            output_names=g.outputs, dynamo=True, verbose=False)
        except Exception as e:  # torch.export's own words, first line: what could not be traced
            if "Constraints violated (sequence)" in str(e) and fixed is None:
                continue
            first = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
            raise ZooError(f"Cannot export '{name}' to ONNX: torch.export failed: {first.strip()[:200]}") from None
        renames = {}
        for value, n in zip(program.model.graph.inputs, inputs):
            for axis, label in labels[n].items():
                renames[value.shape[axis]] = label
        program.rename_axes(renames)  # "batch" and "sequence" rather than torch.export's s0, s1
        return program, fixed
    raise AssertionError("unreachable")


def onnx_outputs(path: Path, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {k: v.numpy() for k, v in inputs.items()})[0])


def export_torchscript(model: Any, out: str | Path) -> Path:
    """Write the model's inference graph, traced, to OUT/model.pt and check it with torch.jit.load; return the file."""
    g = graph(model)
    path = Path(out) / "model.pt"
    model._jit_is_scripting = True  # Lightning's own switch for tracing: `trainer` and friends stay quiet
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings on shape arithmetic that trace records anyway
            traced = torch.jit.trace(g.module, example_kwarg_inputs=g.inputs(), check_trace=False)
    except Exception as e:
        raise ZooError(f"Cannot trace '{model.registry_name}' for TorchScript: {str(e).splitlines()[0][:200]}") from None
    finally:
        model._jit_is_scripting = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch 2.14 steers towards torch.export; TorchScript still loads
        torch.jit.save(traced, str(path), _extra_files={"zoo.json": json.dumps(metadata(model, g))})
    check_export(g, path, lambda inputs: jit_load(path)(**inputs), None)
    return path


def jit_load(path: Path) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path))


def metadata(model: Any, g: Graph) -> dict[str, str]:
    """Return what an exported file says about itself: model, inputs and outputs, the data spec (tokenizer aside)."""
    spec = {k: v for k, v in model.spec.to_dict().items() if k != "tokenizer"}
    return {"zoo.model": model.registry_name, "zoo.io": g.about, "zoo.spec": json.dumps(spec)}


@torch.no_grad()
def check_export(g: Graph, path: Path, run: Any, sequence: int | None) -> None:
    """Raise ZooError unless the exported file reproduces the model on fresh inputs (another batch size and length)."""
    seq = sequence or (max(2, g.max_sequence - 1) if g.max_sequence else None)
    inputs = g.inputs(batch=5, sequence=seq, seed=1)
    expected, got = g.module(**inputs), run(inputs)
    if got.shape != expected.shape or not torch.allclose(got, expected, atol=ATOL, rtol=RTOL):
        path.unlink(missing_ok=True)
        err = (got - expected).abs().max().item() if got.shape == expected.shape else f"shape {tuple(got.shape)}"
        raise ZooError(f"The exported {path.name} does not reproduce the model (max difference {err}); not written")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence the ONNX exporter's progress lines (it prints them to stdout)."""
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        yield


FORMATS = {"onnx": export_onnx, "torchscript": export_torchscript, "hf": export_hf}


def export(ckpt: str, fmt: str, out: str | Path, force: bool = False) -> Path:
    """Export a checkpoint or pretrained name in format `fmt` to the folder `out`, with its model card; return `out`."""
    from zoo.hub.cards import card_markdown
    from zoo.hub.pretrained import export_card, load_with_config

    choose("export format", fmt, FORMATS)
    out = Path(out)
    if out.is_file() or (out.is_dir() and any(out.iterdir())):
        if not force:
            what = "a file" if out.is_file() else "a folder that is not empty"
            raise ZooError(f"{out} already exists ({what}); choose a new or empty folder, or pass --force to "
                           "replace it")
    model, cfg = load_with_config(ckpt)
    with staging(out) as folder:
        FORMATS[fmt](model, folder)
        if model.spec.tokenizer and not (folder / "tokenizer.json").exists():
            (folder / "tokenizer.json").write_text(model.spec.tokenizer)
        (folder / "README.md").write_text(card_markdown(export_card(ckpt, model, cfg)))
    return out


@contextlib.contextmanager
def staging(out: Path) -> Iterator[Path]:
    """Yield a new folder beside `out`; when the block succeeds it replaces `out`, else it is removed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        yield folder
        if out.exists():
            old = out.with_name(f".{out.name}.{os.getpid()}.old")
            os.replace(out, old)
            os.replace(folder, out)
            shutil.rmtree(old) if old.is_dir() else old.unlink()
        else:
            os.replace(folder, out)
    finally:
        if folder.exists():
            shutil.rmtree(folder)
