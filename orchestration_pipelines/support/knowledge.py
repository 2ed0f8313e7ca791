"""The knowledge base: short markdown articles with front matter, and retrieval for replies and the agent.

Retrieval is TF-IDF over each article's title and text with the classifier's typo-robust tokens,
restricted to the articles written for the ticket's intent when there are any. It is vectorised over a
whole batch (one sparse product), so it costs little on the local path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from orchestration_pipelines.config_files import parse_yaml
from orchestration_pipelines.support.classifier import WordGramTfidf

KNOWLEDGE_BASE_DIR = Path(__file__).parent / "knowledge_base"


@dataclass(frozen=True)
class Article:
    id: str
    title: str
    intents: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class Hit:
    article: Article
    score: float


def load_article(path: Path) -> Article:
    _, front, text = path.read_text().split("---", 2)
    meta = parse_yaml(front)
    return Article(str(meta["id"]), meta["title"], tuple(meta.get("intents", ())), " ".join(text.split()))


class KnowledgeBase:
    def __init__(self, articles: Sequence[Article]):
        if not articles:
            raise ValueError("the knowledge base has no articles")
        self.articles = list(articles)
        self._vectorizer = WordGramTfidf()
        self._matrix = self._vectorizer.fit_transform([f"{a.title}\n{a.text}" for a in self.articles])
        self._by_id = {article.id: article for article in self.articles}

    @classmethod
    def load(cls, directory: Path = KNOWLEDGE_BASE_DIR) -> KnowledgeBase:
        return cls([load_article(path) for path in sorted(directory.glob("*.md"))])

    def get(self, article_id: str) -> Article | None:
        return self._by_id.get(article_id)

    def best(self, texts: Sequence[str], intents: Sequence[str | None]) -> list[Hit | None]:
        """The best article for each text: among its intent's articles when that intent has any (the
        most similar of them, even with no word in common: a German ticket and an English article;
        score 1.0 when the intent has one article), else the most similar of all; ``None`` when
        nothing matches at all."""
        intents = np.asarray(intents, dtype=object)
        hits: list[Hit | None] = [None] * len(intents)
        for intent in set(intents.tolist()):  # one vectorised pass per intent, not per ticket
            rows = np.flatnonzero(intents == intent)
            allowed = np.array([intent in article.intents for article in self.articles])
            if allowed.sum() == 1:  # the intent's only article: no similarity needed (the fast path)
                article = self.articles[int(allowed.argmax())]
                for row in rows.tolist():
                    hits[row] = Hit(article, 1.0)
                continue
            scores = (self._vectorizer.transform([texts[row] for row in rows]) @ self._matrix.T).toarray()
            masked = np.where(allowed, scores, -1.0) if allowed.any() else scores
            for position, best in enumerate(masked.argmax(axis=1).tolist()):
                if allowed.any() or scores[position, best] > 0:
                    hits[rows[position]] = Hit(self.articles[best], float(scores[position, best]))
        return hits

    def search(self, query: str, k: int = 3) -> list[Hit]:
        """The ``k`` most similar articles to a free-text query (the agent's knowledge-base tool)."""
        scores = (self._vectorizer.transform([query]) @ self._matrix.T).toarray()[0]
        order = np.argsort(-scores)[:k]
        return [Hit(self.articles[i], float(scores[i])) for i in order if scores[i] > 0]
