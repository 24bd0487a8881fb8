"""Baselines for text classification: TF-IDF features and a logistic regression (scikit-learn).

The texts are the datamodule's own token ids decoded with the spec's tokenizer, not the files
they came from: a baseline reads exactly what the network reads, the same examples of the same
split, cut to the same length and normalised by the same tokenizer (lower case for names, BERT's
normalisation for MiniLM, nothing for a character the train split never had). This needs nothing
from a DataModule but its splits and spec, so every tokens classification dataset, a plugin's
too, gets these baselines.

The regularisation (scikit-learn's C, the inverse L2 strength) matters for TF-IDF features (on
names_gender the default C = 1 loses about 3 points of accuracy), so it is chosen on the
validation split by log loss, the way zoo picks a network's best checkpoint by val/loss.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from zoo.errors import ZooError
from zoo.evaluation.baseline.base import BASELINES, Baseline, Split, task_scores
from zoo.spec import load_tokenizer

C_GRID = tuple(float(c) for c in 10.0 ** np.arange(-1, 2.5, 0.5))  # 0.1, 0.32, 1, ..., 100


class TfidfLogistic(Baseline):
    """TF-IDF features of the decoded texts, then a logistic regression with C chosen on val."""

    supports = frozenset({("tokens", "classification")})

    def vectorizer(self) -> Any:
        """Return a fresh scikit-learn TfidfVectorizer."""
        raise NotImplementedError

    def texts(self, x: np.ndarray) -> list[str]:
        """Return the text of each row of token ids (padding and special tokens dropped)."""
        return load_tokenizer(self.spec.tokenizer).decode_batch(x.tolist(), skip_special_tokens=True)

    def fit(self, train: Split, val: Split) -> TfidfLogistic:
        from sklearn.linear_model import LogisticRegression

        try:
            self.features = self.vectorizer().fit(self.texts(train[0]))
        except ValueError as e:  # scikit-learn: "empty vocabulary; perhaps the documents only contain stop words"
            raise ZooError(f"Baseline '{self.registry_name}' finds no features in the train texts ({e})") from None
        x_train, x_val = self.features.transform(self.texts(train[0])), self.features.transform(self.texts(val[0]))
        best = None
        for c in C_GRID:
            model = LogisticRegression(C=c, max_iter=2000).fit(x_train, train[1])
            loss = self.log_loss(model, x_val, val[1])
            if best is None or loss < best[0]:
                best = (loss, c, model)
        _, self.C, self.model = best
        return self

    def log_loss(self, model: Any, x: Any, y: np.ndarray) -> float:
        """Return the mean negative log-likelihood of the true classes, in nats (a class absent from train: 1e-12)."""
        proba = np.zeros((len(y), self.spec.num_classes))
        proba[:, model.classes_] = model.predict_proba(x)
        return float(-np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, None)).mean())

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        return task_scores(self.spec, y, self.model.predict(self.features.transform(self.texts(x))))


@BASELINES.register("char_tfidf_logistic")
class CharTfidfLogistic(TfidfLogistic):
    """Character 1- to 4-grams within word boundaries: spelling, prefixes and endings ("-a", "-son")."""

    def vectorizer(self) -> Any:
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True)


@BASELINES.register("word_tfidf_logistic")
class WordTfidfLogistic(TfidfLogistic):
    """Words and word pairs: a bag of words. A word never seen in training adds nothing."""

    def vectorizer(self) -> Any:
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)\b\w+\b")
