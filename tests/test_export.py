"""`zoo export --format hf`: a transformer LM becomes a GPT-2 folder with identical logits that pipelines use."""

from __future__ import annotations

import pytest
import torch

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

    import zoo

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
    assert main(["export", "--ckpt", ckpt, str(tmp_path / "out")]) == 2
    assert "exports token language models" in capsys.readouterr().err
    assert main(["export", "--ckpt", ckpt, "--format", "onnx", str(tmp_path / "out")]) == 2
    assert "Unknown export format 'onnx'. Available: hf" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_hf_transformer_gpt2_exports_as_is(tmp_path):
    from transformers import AutoModelForCausalLM

    from zoo.hub.export import export_hf

    model = MODELS.build("hf_transformer", spec=names_spec(), d_model=32, n_layer=1, n_head=2).eval()
    out = export_hf(model, tmp_path / "hf")
    hf = AutoModelForCausalLM.from_pretrained(out).eval()
    ids = torch.tensor([[2, 8, 16, 16, 4]])  # <bos> e m m a
    with torch.no_grad():
        torch.testing.assert_close(hf(ids).logits, model(ids))
