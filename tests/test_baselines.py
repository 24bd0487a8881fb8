"""Classical baselines: every baseline on every dataset of its kind (from the registries), the n-gram
and TF-IDF models against independent computations, `zoo baseline`, `zoo.fit --baseline`, and the
figures of docs/baselines.md."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from functools import cache

import numpy as np
import pytest

from tests.conftest import ROOT
from zoo.errors import ConfigError, IncompatibleError
from zoo.evaluation.baseline import BASELINES, baselines_for, fit_baselines
from zoo.registry import DATA, data_kinds
from zoo.training.config import validate

# Per dataset and kind: a dataset whose kind depends on its arguments (csv, hf_dataset, streaming) once per kind.
CASES = [(d, kind) for d in DATA.names() for kind in data_kinds(d)]
PAIRS = [(d, kind, b) for d, kind in CASES for b in baselines_for(*kind)]


def case_id(data: str, kind: tuple[str, str]) -> str:
    return data if len(data_kinds(data)) == 1 else f"{data}-{kind[0]}-{kind[1]}"

# The metrics the network logs per task (zoo/models/base.py TaskModel, zoo/models/metrics.py).
NETWORK_METRICS = {"classification": {"acc", "precision", "recall", "f1"}, "regression": {"mse", "mae", "r2"},
                   "language_modeling": {"loss", "ppl"}}


@pytest.fixture(scope="module")
def datamodule(tmp_path_factory):
    """Return a cached builder of each registered dataset (file-based ones from their own example)."""

    @cache
    def build(name: str, kind: tuple[str, str] | None = None):
        cls = DATA.get(name)
        kwargs = {}
        if hasattr(cls, "example"):
            root = tmp_path_factory.mktemp(name)
            kwargs = cls.example(root, kind) if len(cls.kinds()) > 1 else cls.example(root)
        dm = DATA.build(name, **kwargs)
        dm.prepare_data()
        return dm

    return build


@pytest.fixture(scope="module")
def results(datamodule):
    """Return a cached fit_baselines(name): every baseline of the dataset's kind."""
    return cache(lambda name, kind=None: fit_baselines(datamodule(name, kind)))


def splits(dm) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {s: tuple(t.numpy() for t in dm.split(s)) for s in ("train", "val", "test")}


def test_every_dataset_has_a_baseline():
    missing = [(d, kind) for d, kind in CASES if not baselines_for(*kind)]
    assert not missing, f"datasets whose kind no baseline fits: {missing}"


@pytest.mark.parametrize("data,kind,baseline", PAIRS, ids=[f"{b}-{case_id(d, k)}" for d, k, b in PAIRS])
def test_baseline_on_dataset(data, kind, baseline, results, datamodule):
    """The network's metric names, on val and test, finite and in range."""
    task = kind[1]
    kind = kind if len(data_kinds(data)) > 1 else None
    r = results(data, kind)[baseline]
    assert set(r) == {f"{s}/{m}" for s in ("val", "test") for m in NETWORK_METRICS[task]}, r
    assert all(math.isfinite(v) for v in r.values()), r
    if task == "classification":
        assert all(0 <= v <= 1 for v in r.values()), r
    if task == "language_modeling":
        for s in ("val", "test"):
            assert r[f"{s}/ppl"] == pytest.approx(math.exp(r[f"{s}/loss"]))
            assert 0 < r[f"{s}/loss"] < math.log(datamodule(data, kind).spec.vocab_size)  # better than uniform


def test_bigram_on_names_matches_an_independent_count(datamodule):
    """Character pairs counted from the raw names (not the token ids), add-k with the k the baseline chose."""
    from zoo.data.base import split_indices
    from zoo.data.names import names_by_gender

    dm = datamodule("names")
    all_names, _ = names_by_gender()
    idx = split_indices(len(all_names), dm.val_fraction, dm.test_fraction, dm.seed)
    words = {s: [all_names[i] for i in idx[s]] for s in idx}
    assert set("".join(words["val"] + words["test"])) <= set("".join(words["train"]))  # no <unk> in val/test

    def pairs(names):  # "^" starts a name, "$" ends it: <bos> and <eos>
        return [(a, b) for n in names for a, b in zip("^" + n, n + "$")]

    counts, firsts = Counter(pairs(words["train"])), Counter(a for a, _ in pairs(words["train"]))
    V = dm.spec.vocab_size

    def nll(split, k):
        return float(np.mean([math.log(firsts[a] + k * V) - math.log(counts[a, b] + k) for a, b in pairs(words[split])]))

    data = splits(dm)
    bigram = BASELINES.build("bigram", spec=dm.spec, seed=dm.seed).fit(data["train"], data["val"])
    assert bigram.evaluate(*data["test"])["loss"] == pytest.approx(nll("test", bigram.k), abs=1e-9)
    assert fit_baselines(dm, ["bigram"])["bigram"]["test/loss"] == pytest.approx(nll("test", bigram.k), abs=1e-9)
    # k is the validation optimum, and better there than add-one smoothing
    assert nll("val", bigram.k) <= min(nll("val", bigram.k * 1.05), nll("val", bigram.k / 1.05))
    assert nll("val", bigram.k) < nll("val", 1.0)


def test_ngrams_score_every_target_but_padding_and_use_their_context(datamodule, results):
    """Every non-padding target counts (text blocks have none); each longer context lowers the NLL."""
    text, names = datamodule("text_file"), datamodule("names")
    x, y = (t.numpy() for t in text.split("test"))
    assert len(BASELINES.build("trigram", spec=text.spec).events(x, y)[1]) == y.size
    x, y = (t.numpy() for t in names.split("test"))
    assert len(BASELINES.build("bigram", spec=names.spec).events(x, y)[1]) == (y != names.spec.pad_id).sum()
    for data in ("names", "text_file"):
        r = results(data)
        assert r["unigram"]["test/loss"] > r["bigram"]["test/loss"] > r["trigram"]["test/loss"], r


def test_char_tfidf_beats_the_majority_class_on_names_gender(datamodule, results):
    from zoo.data.names import names_by_gender

    dm = datamodule("names_gender")
    r = results("names_gender")
    assert r["char_tfidf_logistic"]["test/acc"] >= r["majority"]["test/acc"] + 0.05, r
    assert r["char_tfidf_logistic"]["test/f1"] >= r["majority"]["test/f1"] + 0.2, r
    # the texts are the datamodule's own split, decoded: exactly its names
    x, y = dm.split("test")
    texts = BASELINES.build("char_tfidf_logistic", spec=dm.spec).texts(x.numpy())
    all_names, labels = names_by_gender()
    label_of = dict(zip(all_names, labels))
    assert len(set(texts)) == len(texts) and all(label_of[t] == int(c) for t, c in zip(texts, y))


def test_baseline_names_and_kinds_are_checked(datamodule):
    with pytest.raises(IncompatibleError, match="Baselines that do: bigram, trigram, unigram"):
        fit_baselines(datamodule("names"), ["majority"])
    with pytest.raises(ConfigError, match="Did you mean 'bigram'"):
        fit_baselines(datamodule("names"), ["bigramm"])
    cfg = {"model": {"name": "vae"}, "data": {"name": "digits"}, "run": {"baseline": True}}
    with pytest.raises(IncompatibleError, match="'vae' generates 'digits'.*Models that learn it: cnn"):
        validate(cfg)
    assert validate({**cfg, "model": {"name": "cnn"}})["run"]["baseline"] is True


def test_zoo_baseline_command_prints_every_baseline(capsys):
    from zoo.cli.main import main

    assert main(["baseline", "--data", "names"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("unigram", "bigram", "trigram", "test/loss", "test/ppl")), out


def test_docs_figures_are_what_the_baselines_measure(results):
    """docs/baselines.md's tables (`make docs`): the baselines of each kind, and every embedded dataset's
    baselines, re-measured here."""
    from zoo.cli.evaluate import markdown_figures, markdown_kinds

    text = (ROOT / "docs" / "baselines.md").read_text()
    assert f"<!-- kinds:start -->\n{markdown_kinds()}\n<!-- kinds:end -->" in text, "stale: run `make docs`"

    def rows(markdown: str) -> dict[tuple[str, str], tuple[float, float]]:
        found = re.findall(r"^\| `(\w+)` \| \w+ \| `(\w+)` \| (-?[\d.]+) \| (-?[\d.]+) \|$", markdown, flags=re.M)
        return {(d, b): (float(v), float(t)) for d, b, v, t in found}

    embedded = [d for d in DATA.names() if not hasattr(DATA.get(d), "example")]
    measured = rows(markdown_figures({d: results(d) for d in embedded}))
    documented = rows(text)
    assert set(documented) == set(measured), "docs/baselines.md is stale: run `make docs`"
    for key, values in measured.items():
        assert documented[key] == pytest.approx(values, abs=0.003), (key, "docs/baselines.md is stale: run `make docs`")


def test_fit_with_baseline_flag_adds_rows_to_results_and_table(tmp_path, results, capsys):
    """`python -m zoo.fit ... --baseline`: results.json "baselines" = fit_baselines on the same splits, printed too."""
    from zoo.fit import main

    config = str(ROOT / "configs" / "experiment" / "iris_mlp.yaml")
    assert main(["--config", config, "--baseline", f"run.dir={tmp_path}", "trainer.max_epochs=2",
                 "trainer.enable_progress_bar=false", "logger=false"]) == 0
    out = capsys.readouterr().out
    (run_dir,) = (tmp_path / "iris_mlp").iterdir()
    saved = json.loads((run_dir / "results.json").read_text())
    assert set(saved["baselines"]) == set(baselines_for("tabular", "classification"))
    network = set(saved["val"]) | set(saved["test"])
    for name, metrics in saved["baselines"].items():
        assert set(metrics) <= network, (name, metrics, network)  # the network's own metric names
        assert metrics == pytest.approx(results("iris")[name]), name  # the same splits as in-process
        assert re.search(rf"│ {name}\s+│\s+{metrics['val/acc']:.4f} ", out), out  # a row of the printed table
    assert re.search(rf"│ mlp \(this run\)\s+│\s+{saved['val']['val/acc']:.4f} ", out), out
    assert "baseline: true" in (run_dir / "config.yaml").read_text()  # re-running the config reproduces it
