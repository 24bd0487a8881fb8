"""Chorales from music21's corpus: note tokens, the cache, splits by piece, MIDI both ways, and (slow)
a transformer that beats a unigram model on the test chorales and writes MIDI that parses back."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
import torch

from tests.conftest import FAST_TRAINER, ROOT
from zoo.data import music
from zoo.data.music import Chorales
from zoo.errors import ConfigError, ZooError


def test_tokens_of_a_chorale_read_as_notes_and_bars():
    """bwv10.7 (G minor, two flats) moves to A minor: its soprano starts on E5 for two beats."""
    parts = music.parse_chorale(str(music.corpus_paths()[1]), transpose=True)
    assert set(parts) == set(music.VOICES)
    tokens = parts["soprano"].split()
    assert tokens[:4] == ["E5_2", "G5_2", "|", "E5_1"]
    assert all(t == music.BARLINE or music.TOKEN.match(t) for voice in parts.values() for t in voice.split())
    untransposed = music.parse_chorale(str(music.corpus_paths()[1]), transpose=False)["soprano"].split()
    assert untransposed[0] == "D5_2"  # G minor: the shift to A minor is two semitones up
    beats = sum(e[1] for e in map(music.parse_token, tokens) if e is not None)
    assert beats == sum(e[1] for e in map(music.parse_token, parts["bass"].split()) if e is not None)


@pytest.mark.parametrize("quarters,text", [(1, "1"), (0.5, "0.5"), (1.5, "1.5"), (0.25, "0.25"), (4, "4"),
                                           (Fraction(1, 3), "1/3"), (Fraction(2, 3), "2/3")])
def test_duration_text_round_trips(quarters, text):
    assert music.duration_text(quarters) == text
    assert music.parse_token(f"C4_{text}") == (60, Fraction(quarters).limit_denominator(48))


@pytest.mark.parametrize("bad", ["C4", "H4_1", "C4_x", "C4_0", "<bos>", "c4_1"])
def test_bad_tokens_are_one_line_errors(bad):
    with pytest.raises(ZooError, match="not a note token|no duration"):
        music.parse_token(bad)


def test_midi_round_trip_keeps_every_note(tmp_path):
    """Tokens -> MIDI (music21) -> notes read back: the same onsets, pitches and durations, ties and 32nd notes included."""
    text = "R_0.5 C5_0.5 | D5_1 E-5_1.5 F#4_0.25 G4_0.25 A4_1/3 B4_1/3 C5_1/3 R_1 | G4_16 C5_1/8 D5_1/8 E5_3/4 F5_1/6"
    path = music.write_midi(text, tmp_path / "tune.mid")
    assert path.read_bytes()[:4] == b"MThd"
    assert music.midi_notes(path) == music.token_notes(text)
    assert music.token_notes(text)[0] == (Fraction(1, 2), 72, Fraction(1, 2))  # the rest delays the first note
    with pytest.raises(ZooError, match="No notes"):
        music.write_midi("R_1 |", tmp_path / "silent.mid")
    assert not (tmp_path / "silent.mid").exists()  # nothing half-written


def test_chorales_cache_splits_by_piece_and_shifts_targets(monkeypatch):
    dm = Chorales(pieces=10, block_size=16)
    dm.prepare_data()
    x, y = dm.split("train")
    assert torch.equal(x[:, 1:], y[:, :-1])  # y is x shifted by one
    # A second module reads the cache file, not music21.
    monkeypatch.setattr(music, "parse_chorale", lambda *a: pytest.fail("parsed again despite the cache"))
    again = Chorales(pieces=10, block_size=16, part="all")
    assert again.split("test")[0].numel() > 0
    # Split by piece: the lines of a test chorale are in no other split.
    pieces = again.lines()
    from zoo.data.base import split_indices

    idx = split_indices(len(pieces), again.val_fraction, again.test_fraction, again.seed)
    assert not set(idx["test"]) & set(idx["train"]) and len(pieces[0]) == 4  # all four voices


def test_chorales_bad_settings():
    with pytest.raises(ConfigError, match="Unknown part 'sopran'. Did you mean 'soprano'"):
        Chorales(part="sopran")
    with pytest.raises(ConfigError, match="at least one each"):
        Chorales(pieces=2).split("train")
    with pytest.raises(ConfigError, match="fewer than block_size"):
        Chorales(pieces=4, block_size=4000).split("train")


def test_damaged_cache_is_rebuilt(tmp_path, monkeypatch):
    """One cache entry per score, sha256-checked: a damaged one is parsed again, the others are read."""
    monkeypatch.setenv("ZOO_HOME", str(tmp_path))
    first = Chorales(pieces=3, block_size=8)
    first.prepare_data()
    entries = sorted((tmp_path / "data" / "chorales").glob("*/*.json"))
    assert [p.stem for p in entries] == sorted(p.stem for p in music.corpus_paths()[:3])
    good = entries[0].read_text()
    entries[0].write_text(good[: len(good) // 2])  # truncated by a crash of some other writer
    parsed = []
    real = music.parse_chorale.__wrapped__
    monkeypatch.setattr(music, "parse_chorale", lambda path, t: parsed.append(path) or real(path, t))
    with pytest.warns(UserWarning, match="was corrupt"):
        again = Chorales(pieces=3, block_size=8)
        again.prepare_data()
    assert [Path(p).stem for p in parsed] == [entries[0].stem]
    assert entries[0].read_text() == good
    assert torch.equal(again.split("train")[0], first.split("train")[0])


def test_midi_out_needs_a_music_model(tmp_path):
    from zoo.cli.sample import sample
    from zoo.registry import DATA, MODELS

    dm = DATA.build("names")
    names_lm = MODELS.build("rnn", spec=dm.spec.to_dict(), hidden=8).eval()
    with pytest.raises(ZooError, match="writes MIDI from a model trained on note tokens"):
        sample(names_lm, 1, str(tmp_path / "tune.mid"))
    with pytest.raises(ZooError, match="apply to diffusion models"):
        sample(names_lm, 1, steps=10)


# -- the quality bar (slow) ---------------------------------------------------------------------


@pytest.mark.slow
def test_chorales_transformer_beats_unigram_and_writes_midi(tmp_path, cli):
    from zoo.fit import fit
    from zoo.training.config import load_config, validate

    cfg = validate(load_config([ROOT / "configs" / "experiment" / "chorales_transformer.yaml"],
                               [f"run.dir={tmp_path / 'runs'}", "logger=null", "run.baseline=true",
                                "data.pieces=200",  # CI's budget: half the scores to parse (the full corpus: docs/music.md)
                                *[f"trainer.{k}={str(v).lower()}" for k, v in FAST_TRAINER.items()]]))
    cfg["run"]["name"] = "chorales_transformer"
    results = fit(cfg)
    # zoo's n-gram baselines (zoo/evaluation/baseline/ngram.py), fitted on the same splits and scored the same way
    unigram, bigram = (results["baselines"][k]["test/loss"] for k in ("unigram", "bigram"))
    nll = results["test"]["test/loss"]
    print(f"chorales test NLL {nll:.3f} nats/token, unigram {unigram:.3f}, bigram {bigram:.3f}, "
          f"fit {results['fit_seconds']:.0f} s")
    assert nll < unigram - 0.5, (nll, unigram)

    out = tmp_path / "tune.mid"
    proc = cli("zoo", "sample", "--ckpt", results["best_ckpt"], "-n", "1", "--max-new-tokens", "120",
               "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    notes = music.midi_notes(out)
    assert len(notes) >= 4  # a phrase: generation ends at the model's <eos>, as the chorale lines do
    from zoo.hub.pretrained import load

    model = load(results["best_ckpt"])
    (text,) = model.generate(n=1, max_new_tokens=120, seed=0)
    assert all(t == music.BARLINE or music.TOKEN.match(t) for t in text.split())
    assert music.midi_notes(music.write_midi(text, tmp_path / "again.mid")) == music.token_notes(text)
    assert all(36 <= pitch <= 96 for _, pitch, _ in notes)  # a singable range, not garbage
