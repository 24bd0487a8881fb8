"""Symbolic music: Bach chorales from music21's corpus as note tokens, and the way back to MIDI.

Each voice of a chorale becomes a line of word tokens, one per note, rest or barline:

    G4_1 | G4_1 A4_1 B4_1 C5_0.5 B4_0.5 | A4_2 G4_1 ...

- a note is `<pitch><octave>_<duration>`: pitches spelled C C# D E- E F F# G G# A B- B (music21's
  names, middle C = C4), durations in quarter notes (0.25 a sixteenth, 1.5 a dotted quarter, 1/3 a
  triplet eighth); tied notes are merged into one;
- a rest is `R_<duration>`; `|` is a barline, which has no duration but gives the meter away.

Each chorale is transposed by its key signature to C major or A minor (`transpose`), so a model
learns tonal function rather than twelve copies of it. Parsing all 433 scores with music21 takes
minutes, so the tokens are cached in zoo's cache folder ($ZOO_HOME/data/chorales/, keyed by music21's
version and this module's recipe), and a process parses a score at most once.

`write_midi(text, path)` turns generated tokens back into a MIDI file through music21 (`zoo sample
--out tune.mid`), and `midi_notes(path)` reads one back.
"""

from __future__ import annotations

import functools
import json
import re
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, ClassVar

from zoo.bounds import OpenFraction, PositiveInt, Range
from zoo.data.base import Split, ZooDataModule, split_indices
from zoo.errors import ConfigError, ZooError, choose
from zoo.registry import DATA
from zoo.spec import DataSpec

VOICES = ("soprano", "alto", "tenor", "bass")
PARTS = (*VOICES, "all")
BARLINE = "|"
TOKEN = re.compile(r"^(R|[A-G](?:#|-)?\d)_(\d+(?:\.\d+)?|\d+/\d+)$")  # a note or rest token
RECIPE = "voices-satb/keysig-transpose/striptied/bars/v1"  # bump when the tokens change


# -- notes <-> tokens --------------------------------------------------------------------------


def duration_text(quarters: float | Fraction) -> str:
    """Return a duration in quarter notes as text: "1", "0.5", "1.5", "0.25", or "1/3" for triplets."""
    q = Fraction(quarters).limit_denominator(48)
    if (q * 4).denominator == 1:  # multiples of a sixteenth: decimals
        return str(int(q)) if q.denominator == 1 else f"{float(q):g}"
    return f"{q.numerator}/{q.denominator}"


def parse_token(token: str) -> tuple[int | None, Fraction] | None:
    """Return (MIDI pitch or None for a rest, duration in quarters) of a note token; None for a barline.

    Raises ZooError for anything that is not a note, rest or barline token.
    """
    if token == BARLINE:
        return None
    m = TOKEN.match(token)
    if m is None:
        raise ZooError(f"'{token}' is not a note token (e.g. C5_1, F#4_0.5, R_2, or | for a barline)")
    from music21 import pitch

    duration = Fraction(m.group(2))
    if duration <= 0:
        raise ZooError(f"'{token}' has no duration")
    return (None if m.group(1) == "R" else pitch.Pitch(m.group(1)).midi), duration


def voice_tokens(part: Any, semitones: int = 0) -> str:
    """Return the tokens of a music21 Part, transposed by `semitones`: notes, rests and barlines."""
    from music21 import pitch

    part = part.stripTies()
    bars = sorted({float(m.offset) for m in part.getElementsByClass("Measure")} - {0.0})
    tokens: list[str] = []
    for el in part.flatten().notesAndRests:
        quarters = el.duration.quarterLength
        if quarters == 0:  # grace notes take no time
            continue
        while bars and bars[0] <= float(el.offset) + 1e-6:
            tokens.append(BARLINE)
            bars.pop(0)
        if el.isRest:
            name = "R"
        else:  # the top note of a chord (chorale voices rarely divide)
            name = pitch.Pitch(midi=max(p.midi for p in el.pitches) + semitones).nameWithOctave
        tokens.append(f"{name}_{duration_text(quarters)}")
    return " ".join(tokens)


def key_shift(score: Any) -> int:
    """Return the semitones (-5..6) that move the score's key signature to C major / A minor (no sharps or flats)."""
    from music21 import key

    signatures = score.recurse().getElementsByClass(key.KeySignature)
    sharps = signatures[0].sharps if signatures else 0
    tonic = key.KeySignature(sharps).asKey("major").tonic.pitchClass
    shift = -tonic % 12
    return shift - 12 if shift > 6 else shift


@functools.lru_cache(maxsize=None)
def parse_chorale(path: str, transpose: bool) -> dict[str, str]:
    """Return {voice: tokens} for the soprano, alto, tenor and bass parts a chorale has (parsed once per process)."""
    from music21 import converter

    score = converter.parse(path, forceSource=True, storePickle=False)  # zoo caches tokens, not music21 pickles
    shift = key_shift(score) if transpose else 0
    out = {}
    for part in score.parts:
        name = str(part.partName or part.id or "").strip().lower()
        if name in VOICES and name not in out:
            out[name] = voice_tokens(part, shift)
    return out


def corpus_paths() -> list[Path]:
    """Return the Bach scores that ship in music21's corpus, sorted by file name."""
    from music21 import corpus

    return sorted(corpus.getComposer("bach"), key=lambda p: Path(p).name)


def tokenized_corpus(paths: list[Path], transpose: bool) -> dict[str, dict[str, str]]:
    """Return {file name: {voice: tokens}} for `paths`, from zoo's cache, parsing (and caching) what is missing.

    Each score is one cache entry (`zoo.data.download.cached`: sha256-checked, made again when
    damaged, locked against parallel runs), so an interrupted first run keeps what it parsed.
    """
    import hashlib

    import music21
    from tqdm.auto import tqdm

    from zoo.data.download import cache_dir

    recipe = hashlib.sha256(RECIPE.encode()).hexdigest()[:12]
    folder = cache_dir() / "data" / "chorales" / f"m21-{music21.__version__}-{recipe}-{'c' if transpose else 'orig'}"
    entries = {Path(p).name: (str(p), folder / f"{Path(p).stem}.json") for p in paths}
    todo = [name for name, (_, entry) in entries.items() if not entry.is_file()]
    # A progress bar on a terminal: the first run parses about three scores a second.
    for name in tqdm(todo, desc="music21: parsing chorales (once)", unit="score", disable=None):
        entry_of(*entries[name], transpose)
    return {name: entry_of(path, entry, transpose) for name, (path, entry) in entries.items()}


def entry_of(path: str, entry: Path, transpose: bool) -> dict[str, str]:
    """Return the {voice: tokens} of one score from its cache entry, made by parsing the score when missing or damaged."""
    from zoo.data.download import cached

    def make(part: Path) -> None:
        part.write_text(json.dumps(parse_chorale(path, transpose)))

    return json.loads(cached(entry, make, what=f"The note tokens cached for {Path(path).name}").read_text())


# -- MIDI ----------------------------------------------------------------------------------------


def tokens_to_stream(text: str, bpm: int = 80) -> Any:
    """Return a music21 Score with one part holding the notes and rests of `text` (barlines are skipped)."""
    from music21 import note, stream, tempo

    part = stream.Part()
    part.append(tempo.MetronomeMark(number=bpm))
    for token in text.split():
        event = parse_token(token)
        if event is None:
            continue
        midi, quarters = event
        el = note.Rest() if midi is None else note.Note(midi)
        el.duration.quarterLength = quarters
        part.append(el)
    if not part.notes:
        raise ZooError(f"No notes to write in {text[:60]!r}")
    return stream.Score([part])


def write_midi(text: str, path: str | Path, bpm: int = 80) -> Path:
    """Write note tokens as a MIDI file (atomically) and return its path."""
    from zoo.data.download import atomic_output

    score = tokens_to_stream(text, bpm)
    path = Path(path)
    with atomic_output(path) as tmp:
        score.write("midi", fp=str(tmp))
    return path


def midi_notes(path: str | Path) -> list[tuple[Fraction, int, Fraction]]:
    """Return the (onset, MIDI pitch, duration) of every note in a MIDI file, in quarter notes, in time order."""
    from music21 import converter

    # music21 reads long notes back as tied notes within measures: merge them again
    # quantizePost=False: music21 would otherwise round 32nd notes (1/8 of a quarter) to 16ths
    score = converter.parse(str(path), forceSource=True, storePickle=False, quantizePost=False).stripTies()
    notes = [(Fraction(n.offset).limit_denominator(48), p.midi, Fraction(n.duration.quarterLength).limit_denominator(48))
             for n in score.flatten().notes for p in n.pitches]
    return sorted(notes)


def token_notes(text: str) -> list[tuple[Fraction, int, Fraction]]:
    """Return the (onset, MIDI pitch, duration) of the notes in a line of tokens, as `midi_notes` reads them back."""
    out, now = [], Fraction(0)
    for token in text.split():
        event = parse_token(token)
        if event is None:
            continue
        midi, quarters = event
        if midi is not None:
            out.append((now, midi, quarters))
        now += quarters
    return out


def is_music_vocabulary(tokenizer: Any) -> bool:
    """Return True when every token of a tokenizer, but its special ones, is a note, rest or barline token."""
    words = [t for t in tokenizer.get_vocab() if not (t.startswith("<") and t.endswith(">"))]
    return bool(words) and all(t == BARLINE or TOKEN.match(t) for t in words)


# -- the DataModule ------------------------------------------------------------------------------


@DATA.register("chorales")
class Chorales(ZooDataModule):
    """Bach chorales from music21's corpus as note tokens (pitch_duration, rests, barlines), for language models.

    Chorales are split by piece (seeded), so no test chorale is seen in training. A split's lines
    (one per voice, `<bos> tokens <eos>`) are joined into one token stream and cut into blocks of
    `block_size + 1` tokens: x is the first block_size, y the last (x shifted by one). The
    vocabulary is the train split's tokens (a `word` tokenizer); others become `<unk>`.

    Args:
        part: the voice to learn (soprano, alto, tenor or bass), or all four as separate lines.
        transpose: move every chorale to C major / A minor by its key signature.
        pieces: use only the first N scores (by file name), for quick runs; default all 433.
        block_size: tokens per training example (the model's context length).
        stride: offset between training blocks (default block_size: no overlap); val/test never overlap.
    """

    modality: ClassVar[str] = "tokens"
    task: ClassVar[str] = "language_modeling"

    def __init__(self, *, part: str = "soprano", transpose: bool = True, pieces: PositiveInt | None = None,
                 block_size: Annotated[int, Range(2)] = 128, stride: PositiveInt | None = None,
                 batch_size: PositiveInt = 32, eval_batch_size: PositiveInt | None = None,
                 val_fraction: OpenFraction = 0.1, test_fraction: OpenFraction = 0.1,
                 seed: int = 0) -> None:
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size,
                         val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
        self.part = choose("part", part, PARTS)
        self.transpose, self.pieces = transpose, pieces
        self.block_size, self.stride = block_size, stride or block_size

    def paths(self) -> list[Path]:
        """Return the scores this module reads."""
        return corpus_paths()[: self.pieces]

    def prepare_data(self) -> None:
        tokenized_corpus(self.paths(), self.transpose)  # parse once, into the cache

    def lines(self) -> list[list[str]]:
        """Return, per chorale (in file-name order), its token lines: the chosen voice or all four."""
        voices = VOICES if self.part == "all" else (self.part,)
        corpus = tokenized_corpus(self.paths(), self.transpose)
        pieces = [[parts[v] for v in voices if parts.get(v)] for parts in corpus.values()]
        return [lines for lines in pieces if lines]

    def load_splits(self) -> tuple[dict[str, Split], DataSpec]:
        from zoo.data.text import stream_splits

        pieces = self.lines()
        if len(pieces) < 3:
            raise ConfigError(f"data.pieces={self.pieces} gives {len(pieces)} chorales with a {self.part} part; "
                              "train, val and test need at least one each")
        idx = split_indices(len(pieces), self.val_fraction, self.test_fraction, self.seed)
        # every voice line is a document of its own: <bos> tokens <eos>
        lines = {name: [(line, True, True) for i in ids for line in pieces[i]] for name, ids in idx.items()}
        return stream_splits("word", lines, 0, self.block_size, self.stride)

    @classmethod
    def example(cls, root: Path) -> dict:
        """Return the arguments of a quick real run: the first 12 chorales in blocks of 32 tokens (nothing is written)."""
        return {"pieces": 12, "block_size": 32, "batch_size": 16}
