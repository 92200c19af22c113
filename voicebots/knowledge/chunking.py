"""Cut extracted sections into overlapping, token-bounded chunks for embedding.

Chunks follow the document: a chunk never spans two sections, whole paragraphs
are kept together when they fit, and only oversized paragraphs are cut at
sentence (then word) boundaries. Pure Python, no Django.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from .extraction import Section

HEADING_SEPARATOR = " > "

# Within a line, a sentence ends at . ! ? or … (optionally followed by a closing
# quote or bracket) before whitespace, or at a CJK full stop. Starting the
# pattern with the punctuation lets the regex engine skip ahead quickly.
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]?\s+|[。！？]\s*")
_PARAGRAPH_BOUNDARY = re.compile(r"\n\s*\n")


@dataclass(frozen=True)
class Chunk:
    text: str
    heading_path: tuple[str, ...]
    page: int | None
    index: int
    token_count: int


@dataclass(frozen=True)
class _Piece:
    """A sentence or part of one, with the text that joins it to the piece before."""
    text: str
    tokens: int
    joiner: str


def chunk_sections(
    sections: Iterable[Section],
    *,
    count_tokens: Callable[[str], int],
    max_tokens: int = 200,
    overlap_tokens: int = 40,
) -> list[Chunk]:
    """Chunks of at most `max_tokens` tokens (a single word longer than that stays whole).

    Consecutive chunks of a section share the trailing whole sentences of the first that fit
    in `overlap_tokens` (none when its last sentence alone is longer). A chunk's token_count
    is the sum of its sentences' counts, which for word-piece or whitespace tokenizers is the
    count of its text.
    """
    if max_tokens < 1:
        raise ValueError("max_tokens must be at least 1")
    if not 0 <= overlap_tokens < max_tokens:
        raise ValueError("overlap_tokens must be at least 0 and less than max_tokens")
    chunks: list[Chunk] = []
    for section in sections:
        paragraphs = _paragraph_pieces(section.text, count_tokens, max_tokens, overlap_tokens)
        for pieces in _pack(paragraphs, max_tokens, overlap_tokens):
            chunks.append(Chunk(
                text=_render(pieces),
                heading_path=section.heading_path,
                page=section.page,
                index=len(chunks),
                token_count=sum(piece.tokens for piece in pieces),
            ))
    return chunks


def chunk_text_for_embedding(chunk: Chunk) -> str:
    """The chunk's text under its heading path, which helps retrieval match the topic."""
    if not chunk.heading_path:
        return chunk.text
    return f"{HEADING_SEPARATOR.join(chunk.heading_path)}\n{chunk.text}"


def _paragraph_pieces(
    text: str, count_tokens: Callable[[str], int], max_tokens: int, overlap_tokens: int
) -> list[list[_Piece]]:
    """Each paragraph as its sentences, sentences too long for a chunk cut into word runs."""
    # Word runs no longer than the overlap, so the overlap can carry at least one of them.
    word_run_tokens = overlap_tokens or max_tokens
    paragraphs = []
    for paragraph in _PARAGRAPH_BOUNDARY.split(text):
        pieces: list[_Piece] = []
        for joiner, sentence in _sentences(paragraph):
            tokens = count_tokens(sentence)
            if tokens > max_tokens:
                pieces.extend(_word_runs(sentence, joiner, count_tokens, word_run_tokens))
            else:
                pieces.append(_Piece(sentence, tokens, joiner))
        if pieces:
            paragraphs.append(pieces)
    return paragraphs


def _sentences(paragraph: str) -> Iterator[tuple[str, str]]:
    """(joiner, sentence) pairs: the first joiner is a paragraph break, then a line break
    between lines and a space (or nothing, after CJK punctuation) within a line."""
    joiner = "\n\n"
    for line in paragraph.split("\n"):
        start = 0
        for end in _SENTENCE_END.finditer(line):
            sentence = line[start:end.end()].strip()
            if sentence:
                yield joiner, sentence
                joiner = " " if end.group()[-1].isspace() else ""
            start = end.end()
        rest = line[start:].strip()
        if rest:
            yield joiner, rest
        if rest or start:
            joiner = "\n"


def _word_runs(
    sentence: str, joiner: str, count_tokens: Callable[[str], int], run_tokens: int
) -> list[_Piece]:
    runs: list[_Piece] = []
    words: list[str] = []
    tokens = 0
    for word in sentence.split():
        word_tokens = count_tokens(word)
        if words and tokens + word_tokens > run_tokens:
            runs.append(_Piece(" ".join(words), tokens, joiner if not runs else " "))
            words, tokens = [], 0
        words.append(word)
        tokens += word_tokens
    if words:
        runs.append(_Piece(" ".join(words), tokens, joiner if not runs else " "))
    return runs


def _pack(paragraphs: list[list[_Piece]], max_tokens: int, overlap_tokens: int) -> list[list[_Piece]]:
    """Greedy packing: whole paragraphs while they fit, else sentence by sentence."""
    chunks: list[list[_Piece]] = []
    current: list[_Piece] = []
    carried = 0  # how many pieces at the start of `current` repeat the previous chunk
    used = 0

    def start_new_chunk(next_tokens: int) -> None:
        nonlocal current, carried, used
        if len(current) > carried:
            chunks.append(current)
            current = _overlap(current, min(overlap_tokens, max_tokens - next_tokens))
        else:  # only overlap so far: it cannot make room for the next piece
            current = []
        carried = len(current)
        used = sum(piece.tokens for piece in current)

    for paragraph in paragraphs:
        paragraph_tokens = sum(piece.tokens for piece in paragraph)
        if paragraph_tokens <= max_tokens:
            if used + paragraph_tokens > max_tokens:
                start_new_chunk(paragraph_tokens)
            current.extend(paragraph)
            used += paragraph_tokens
            continue
        for piece in paragraph:
            if used + piece.tokens > max_tokens:
                start_new_chunk(piece.tokens)
            current.append(piece)
            used += piece.tokens
    if len(current) > carried:
        chunks.append(current)
    return chunks


def _overlap(pieces: list[_Piece], budget: int) -> list[_Piece]:
    """The trailing pieces of a chunk that fit in `budget` tokens."""
    tail: list[_Piece] = []
    for piece in reversed(pieces):
        if piece.tokens > budget:
            break
        tail.append(piece)
        budget -= piece.tokens
    tail.reverse()
    return tail


def _render(pieces: list[_Piece]) -> str:
    return pieces[0].text + "".join(piece.joiner + piece.text for piece in pieces[1:])
