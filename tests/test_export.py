"""`zoo export`: ONNX and TorchScript files that reproduce the model's own API, and a transformer LM
as a GPT-2 folder with identical logits that pipelines use."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import zoo
from tests.conftest import FAST_TRAINER, run_cli
from zoo.registry import DATA, MODELS


def names_spec() -> dict:
    dm = DATA.build("names")
    dm.prepare_data()
    return dm.spec.to_dict()


def trained_checkpoint(tmp_path, **hparams) -> str:
    """Train a tiny names LM for a few steps and return its best checkpoint."""
    from zoo.fit import fit
    from zoo.training.config import validate

    cfg = validate({"model": {"name": "transformer", "d_model": 32, "n_layer": 2, "n_head": 2, **hparams},
                    "data": {"name": "names"}, "logger": None, "run": {"dir": str(tmp_path), "name": "lm"},
                    "optim": {"lr": 1e-2},
                    "trainer": {**FAST_TRAINER, "max_epochs": 1, "limit_train_batches": 10, "limit_val_batches": 2}})
    return fit(cfg)["best_ckpt"]


@pytest.mark.parametrize("hparams", [
    {},  # learned positions, tied head, biases
    {"positions": "sinusoidal", "tie_weights": False, "bias": False, "mlp_ratio": 2},
])
def test_exported_gpt2_has_identical_logits(hparams, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from zoo.hub.export import export_hf

    model = MODELS.build("transformer", spec=names_spec(), d_model=32, n_layer=2, n_head=4, **hparams).eval()
    out = export_hf(model, tmp_path / "hf")
    hf = AutoModelForCausalLM.from_pretrained(out).eval()
    assert type(hf).__name__ == "GPT2LMHeadModel"
    tok = AutoTokenizer.from_pretrained(out)
    ids = tok(["emma", "maximilian"], padding=True, return_tensors="pt")["input_ids"]
    assert ids[0, 0].item() == tok.bos_token_id == model.tokenizer.token_to_id("<bos>")
    with torch.no_grad():
        ours, theirs = model(ids), hf(ids).logits
    torch.testing.assert_close(theirs, ours, rtol=1e-5, atol=1e-5)


def test_cli_export_then_pipeline_generates(tmp_path):
    from transformers import pipeline

    ckpt = trained_checkpoint(tmp_path)
    proc = run_cli("zoo.cli", "export", "--ckpt", ckpt, "--format", "hf", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (tmp_path / "out" / name).is_file(), name
    generator = pipeline("text-generation", model=str(tmp_path / "out"), device="cpu")
    sampled = generator("ma", max_new_tokens=8, do_sample=True, num_return_sequences=3)
    assert len(sampled) == 3 and all(s["generated_text"].startswith("ma") for s in sampled)
    # Greedy decoding is deterministic, so the exported model continues exactly as zoo's own generate.
    greedy = generator("ma", max_new_tokens=8, do_sample=False)[0]["generated_text"]
    assert greedy == zoo.load(ckpt).generate("ma", max_new_tokens=8, temperature=0)[0]


def test_export_refuses_what_does_not_map(tmp_path, capsys):
    from zoo.cli import main
    from zoo.fit import fit
    from zoo.training.config import validate

    cfg = validate({"model": {"name": "transformer", "d_model": 16, "n_layer": 1, "n_head": 2},
                    "data": {"name": "wine"}, "logger": None, "run": {"dir": str(tmp_path), "name": "w"},
                    "trainer": {**FAST_TRAINER, "max_epochs": 1, "limit_train_batches": 1, "limit_val_batches": 1}})
    ckpt = fit(cfg)["best_ckpt"]
    assert main(["export", "--ckpt", ckpt, "--format", "hf", str(tmp_path / "out")]) == 2
    assert "exports token language models" in capsys.readouterr().err
    assert main(["export", "--ckpt", ckpt, "--format", "onx", str(tmp_path / "out")]) == 2
    assert "Unknown export format 'onx'. Did you mean 'onnx'? Available: diffusers, hf, onnx, torchscript" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == [tmp_path / "w"]  # nothing half-written


def test_hf_transformer_gpt2_exports_as_is(tmp_path):
    from transformers import AutoModelForCausalLM

    from zoo.hub.export import export_hf

    model = MODELS.build("hf_transformer", spec=names_spec(), d_model=32, n_layer=1, n_head=2).eval()
    out = export_hf(model, tmp_path / "hf")
    hf = AutoModelForCausalLM.from_pretrained(out).eval()
    ids = torch.tensor([[2, 8, 16, 16, 4]])  # <bos> e m m a
    with torch.no_grad():
        torch.testing.assert_close(hf(ids).logits, model(ids))


# -- ONNX and TorchScript: the exported file against the model's own Python API ---------------------


def api_case(name: str) -> tuple[Any, dict[str, torch.Tensor], torch.Tensor]:
    """Return (model, inputs for its exported file, what the model's own API returns for the same inputs).

    Classifiers and regressors: real raw test rows into `predict_step`. Language models: prompts,
    right-padded, into `predict_step`. VAE and GAN: the noise that `sample(n, labels, generator=g)`
    draws from g, and the samples it returns.
    """
    from zoo.hub import pretrained
    from zoo.spec import encode, special_id
    from zoo.training.config import datamodule_for

    model, spec = zoo.load(name), zoo.load(name).spec
    with torch.no_grad():
        if callable(getattr(model, "sample", None)):
            n = 6
            labels = torch.arange(n) % model.num_labels if model.conditional else None
            expected = model.sample(n, labels, generator=torch.Generator().manual_seed(0))
            g = torch.Generator().manual_seed(0)  # the same draws, in the order sample() makes them
            inputs = {"z": torch.randn(n, model.latent_dim, generator=g)}
            if labels is not None:
                inputs["labels"] = labels
            if getattr(model, "likelihood", None) == "gaussian":
                inputs["noise"] = torch.randn(n, *spec.input_shape, generator=g)
            return model, inputs, expected
        if spec.task == "language_modeling":
            tok = model.tokenizer
            rows = [[special_id(tok, "bos"), *encode(tok, p)] for p in ("ma", "emm", "alexa")]
            ids = torch.full((len(rows), spec.input_shape[0]), spec.pad_id)
            for i, r in enumerate(rows):
                ids[i, : len(r)] = torch.tensor(r)
            return model, {"x": ids}, model.predict_step(ids)
        if spec.modality == "tokens":
            ids = model.encode_text(["emma", "noah", "alexander", "jo"])
            return model, {"x": ids}, model.predict_step(ids)
        x = datamodule_for(pretrained.card(name)["recipe"], []).split("test")[0][:7]
        return model, {"x": x}, model.predict_step(x)


# One card per architecture and per kind of graph: image, table, LM with a dynamic sequence, LM with a
# fixed one (recurrent), GAN with labels, VAE with the Gaussian likelihood's noise, conv VAE decoder.
ONNX_CARDS = ["cnn-digits", "mlp-iris", "ft-transformer-wine", "transformer-names", "rnn-names",
              "cgan-digits", "vae-wine", "vae-digits"]


@pytest.mark.parametrize("name", ONNX_CARDS)
def test_onnx_export_reproduces_the_model(name, tmp_path):
    import onnxruntime

    from zoo.hub.export import export

    model, inputs, expected = api_case(name)
    out = export(name, "onnx", tmp_path / "out")
    session = onnxruntime.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == list(inputs)
    shapes = {i.name: i.shape for i in session.get_inputs()}
    assert all(shape[0] == "batch" for shape in shapes.values()), shapes
    if name == "transformer-names":  # a dynamic sequence: shorter prompts need no padding
        assert shapes["x"] == ["batch", "sequence"]
        short = inputs["x"][:, :4]
        got = session.run(None, {"x": short.numpy()})[0]
        torch.testing.assert_close(torch.from_numpy(got), model.predict_step(short), rtol=1e-4, atol=1e-5)
    if name == "rnn-names":  # recurrent layers unroll in torch.export: the sequence is fixed, right-padded
        assert shapes["x"] == ["batch", model.spec.input_shape[0]]
        assert "right-padded" in session.get_modelmeta().description
    got = session.run(None, {k: v.numpy() for k, v in inputs.items()})[0]
    torch.testing.assert_close(torch.from_numpy(got), expected, rtol=1e-4, atol=1e-5)
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["zoo.model"] == model.registry_name and json.loads(meta["zoo.spec"])["modality"] == model.spec.modality
    files = sorted(p.name for p in out.iterdir())
    assert files == (["README.md", "model.onnx", "tokenizer.json"] if model.spec.tokenizer else ["README.md", "model.onnx"])
    assert f"# {name}" in (out / "README.md").read_text()


def test_torchscript_export_reproduces_every_card(tmp_path):
    from zoo.hub import pretrained
    from zoo.hub.export import export

    for name in sorted(pretrained.cards()):
        model, inputs, expected = api_case(name)
        out = export(name, "torchscript", tmp_path / name)
        extra = {"zoo.json": ""}
        loaded = torch.jit.load(str(out / "model.pt"), _extra_files=extra)
        with torch.no_grad():
            torch.testing.assert_close(loaded(**inputs), expected, rtol=1e-4, atol=1e-5, msg=name)
            if model.spec.task == "language_modeling":  # any length up to the context
                short = {"x": inputs["x"][:, :3]}
                torch.testing.assert_close(loaded(**short), model.predict_step(short["x"]), rtol=1e-4, atol=1e-5)
        assert json.loads(extra["zoo.json"])["zoo.model"] == model.registry_name


def test_every_registered_model_traces_to_torchscript(tmp_path):
    """Registry-driven: each model on each kind of embedded data it supports (untrained, with its data's spec)."""
    from zoo.hub.export import export_torchscript
    from zoo.hub.graphs import graph

    specs = {}
    for d in ("digits", "wine", "diabetes", "names", "names_gender"):
        dm = DATA.build(d)
        dm.prepare_data()
        specs[d] = dm.spec.to_dict()
    done = 0
    for m in MODELS.names():
        for d, spec in specs.items():
            if not MODELS.get(m).supports_data(spec["modality"], spec["task"]):
                continue
            if m == "diffusion":  # a loop of denoising steps, exported with --format diffusers (tests/test_diffusion.py)
                continue
            extra = {"d_model": 16, "n_layer": 1, "n_head": 2} if m in ("transformer", "hf_transformer") else {}
            model = MODELS.build(m, spec=spec, **extra).eval()
            folder = tmp_path / f"{m}-{d}"
            folder.mkdir()
            path = export_torchscript(model, folder)
            g = graph(model)
            inputs = g.inputs(batch=4, seed=2)
            with torch.no_grad():
                torch.testing.assert_close(torch.jit.load(str(path))(**inputs), g.module(**inputs), msg=f"{m} {d}")
            done += 1
    assert done >= 25


def test_what_cannot_export_says_why_in_one_line(tmp_path, capsys):
    from zoo.cli import main

    assert main(["export", "--ckpt", "lstm-names-gender", "--format", "onnx", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "Cannot export an 'rnn' token classifier to ONNX: it packs padded sequences" in err and err.count("\n") == 1
    assert main(["export", "--ckpt", "cnn-digits", "--format", "hf", str(tmp_path / "o")]) == 2
    assert "--format hf exports token language models" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # no OUT, no staging folder left behind


def test_export_never_overwrites_silently(tmp_path, capsys):
    from zoo.cli import main

    taken = tmp_path / "taken.onnx"
    taken.write_text("someone's file")
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    for target in (taken, full):
        assert main(["export", "--ckpt", "mlp-iris", "--format", "torchscript", str(target)]) == 2
        assert "--force" in capsys.readouterr().err
    assert taken.read_text() == "someone's file" and (full / "keep.txt").read_text() == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["export", "--ckpt", "mlp-iris", "--format", "torchscript", str(empty)]) == 0
    assert "exported mlp-iris as torchscript" in capsys.readouterr().out
    assert main(["export", "--ckpt", "mlp-iris", "--format", "torchscript", "--force", str(full)]) == 0
    assert sorted(p.name for p in full.iterdir()) == ["README.md", "model.pt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "full", "taken.onnx"]


def test_export_of_a_checkpoint_writes_its_own_card(tmp_path, capsys):
    """A run's best checkpoint has no pretrained card: the README says what the file and results.json say."""
    import yaml

    from zoo.cli import main

    ckpt = trained_checkpoint(tmp_path)
    assert main(["export", "--ckpt", ckpt, "--format", "torchscript", str(tmp_path / "ts")]) == 0
    readme = (tmp_path / "ts" / "README.md").read_text()
    front = yaml.safe_load(readme.split("---\n")[1])
    assert front["license"] == "other" and front["pipeline_tag"] == "text-generation"
    assert "| test/loss |" in readme and f'zoo.load("{Path(ckpt).name}")' in readme
    assert "limits have not been written down" in readme
    assert (tmp_path / "ts" / "tokenizer.json").read_text() == zoo.load(ckpt).spec.tokenizer
