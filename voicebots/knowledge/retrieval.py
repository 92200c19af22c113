"""Hybrid retrieval: vector similarity and full-text phrase matching fused by reciprocal rank.

One SQL statement per query (after one that sets the HNSW scan). Only live chunks (the
serving version of each document) of the given account and documents are ever read.

The vector half takes the chunks nearest the query's embedding. The text half re-ranks the
nearest VECTOR_POOL of them by the query's word pairs: each two consecutive words of the query,
as a phrase ("Drift 3", "3 cordless", "cordless drill"). Pairs find the passage about the very
product, place or service the caller named, which the embedding often confuses with its
neighbours ("Drift S cordless drill"), while a paraphrase needs to share only one pair of
words with its passage. Measured alternatives (bench.knowledge at 100k chunks):
- all of the query's words (websearch_to_tsquery): almost never matches a paraphrased question;
- any of its words (an OR query) over the whole scope: matches 12-65% of the chunks, so ranking
  them costs 100-800 ms, and single words rank passages worse than the vector half alone;
- word pairs over the whole scope: the best recall, but 25-35 ms (every chunk holding both
  words of a common pair is read to check their positions).
Re-ranking the vector pool costs 2-3 ms more than the vector half alone; what it gives up is a
lexical match outside the VECTOR_POOL nearest chunks.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from uuid import UUID

from django.db import connection, transaction

from .embeddings import embed_query
from .models import SEARCH_CONFIG

RRF_K = 60  # the usual reciprocal-rank constant: dampens the weight of the very top ranks
MAX_TOP_K = 20
# How many nearest chunks the text half re-ranks, and how wide the HNSW graph is searched
# (hnsw.ef_search; pgvector's default is 40). bench.knowledge at 100k chunks, recall@5: 0.94 with a
# pool of 20, 0.96 with 50, 0.98 with 100, 1.00 with 200 (but 3 ms more); ef_search 40 with a pool
# of 100: 0.92, and slower, as the scan goes on past the graph's first answers.
VECTOR_POOL = 100
# ts_rank_cd's normalisation 1: divide by 1 + log(length), so a long chunk does not win by
# repeating a name more often.
RANK_NORMALISATION = 1

_SCAN_SETTINGS = """
SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), set_config('hnsw.ef_search', %(pool)s::text, true)
"""

# Pairs of consecutive words of the query with their distance (stop words count, as in the
# chunks' search vectors), as phrases OR-ed together: "Drift 3 cordless" gives
# 'drift' <-> '3' | '3' <-> 'cordless'. A query of one word is that word.
_PHRASES = f"""
SELECT coalesce(
    string_agg(format('%%L <%%s> %%L', lexeme, next_position - position, next_lexeme), ' | ' ORDER BY position)::tsquery,
    plainto_tsquery('{SEARCH_CONFIG}', %(query)s)) AS query
FROM (
    SELECT lexeme, position, lead(lexeme) OVER by_position AS next_lexeme,
           lead(position) OVER by_position AS next_position
    FROM unnest(to_tsvector('{SEARCH_CONFIG}', %(query)s)) word, unnest(word.positions) position
    WINDOW by_position AS (ORDER BY position)
) words
WHERE next_lexeme IS NOT NULL
"""

_SQL = f"""
WITH pool AS (
    SELECT id, search_vector, row_number() OVER (ORDER BY distance) AS rank FROM (
        SELECT c.id, c.search_vector, c.embedding <=> %(embedding)s::vector AS distance
        FROM knowledge_chunk c
        WHERE c.account_id = %(account)s AND c.document_id = ANY(%(documents)s::uuid[]) AND c.live
        ORDER BY distance LIMIT %(pool)s
    ) nearest
), vector_hits AS (
    SELECT id, rank FROM pool WHERE rank <= %(candidates)s
), text_hits AS (
    -- Equally relevant chunks keep their vector order.
    SELECT id, row_number() OVER (ORDER BY relevance DESC, vector_rank) AS rank FROM (
        SELECT p.id, p.rank AS vector_rank,
               ts_rank_cd(p.search_vector, phrases.query, {RANK_NORMALISATION}) AS relevance
        FROM pool p, ({_PHRASES}) phrases
        WHERE p.search_vector @@ phrases.query
        ORDER BY relevance DESC, vector_rank LIMIT %(candidates)s
    ) matching
), fused AS (
    SELECT id, sum(1.0 / ({RRF_K} + rank)) AS score
    FROM (SELECT * FROM vector_hits UNION ALL SELECT * FROM text_hits) ranked
    GROUP BY id
)
SELECT c.text, f.score, c.document_id, d.name, c.page, c.heading_path
FROM fused f
JOIN pool p ON p.id = f.id
JOIN knowledge_chunk c ON c.id = f.id
JOIN knowledge_knowledgebase d ON d.id = c.document_id
-- On a tie (the nearest chunk second by its words, the second nearest first) the nearer one leads.
ORDER BY f.score DESC, p.rank
LIMIT %(top_k)s
"""


@dataclass(frozen=True)
class Hit:
    text: str
    score: float
    knowledgebase_id: UUID
    name: str
    page: int | None
    heading_path: tuple[str, ...] = ()


@dataclass
class SearchResult:
    hits: list[Hit]
    timings_ms: dict[str, float] = field(default_factory=dict)


def _vector_literal(vector) -> str:
    return "[" + ",".join(f"{x:.6f}" for x in vector) + "]"


def search_params(account_id, query: str, embedding, documents: list[str], top_k: int) -> dict:
    """The parameters of _SCAN_SETTINGS and _SQL for one query."""
    candidates = max(20, top_k * 4)  # from each half
    return {"embedding": _vector_literal(embedding), "account": str(account_id), "documents": documents,
            "query": query, "candidates": candidates, "pool": max(VECTOR_POOL, candidates),
            "top_k": min(top_k, MAX_TOP_K)}


def search(account_id, query: str, document_ids, *, top_k: int = 5) -> SearchResult:
    """The best `top_k` passages for `query` among `document_ids` of the account, best first."""
    documents = [str(d) for d in document_ids]
    query = query.strip()
    if not documents or not query:
        return SearchResult([])
    started = time.perf_counter()
    embedding = embed_query(query)
    embedded = time.perf_counter()
    params = search_params(account_id, query, embedding, documents, top_k)
    with transaction.atomic(), connection.cursor() as cursor:
        # Keep scanning the HNSW graph until enough rows pass the account/document filter, as wide as the pool.
        cursor.execute(_SCAN_SETTINGS, params)
        cursor.execute(_SQL, params)
        rows = cursor.fetchall()
    done = time.perf_counter()
    hits = [Hit(text, float(score), document_id, name, page, _headings(headings))
            for text, score, document_id, name, page, headings in rows]
    return SearchResult(hits, {"embed_ms": (embedded - started) * 1000, "query_ms": (done - embedded) * 1000,
                               "total_ms": (done - started) * 1000})


def _headings(value) -> tuple[str, ...]:
    """A chunk's heading path from raw SQL: Django has psycopg hand jsonb over as text, not parsed."""
    if isinstance(value, str):
        value = json.loads(value)
    return tuple(value or ())


def search_for_bot(bot, query: str, *, top_k: int = 5) -> SearchResult:
    """Passages from the documents attached to one bot."""
    document_ids = list(bot.knowledgebases.values_list("id", flat=True))
    return search(bot.account_id, query, document_ids, top_k=top_k)
