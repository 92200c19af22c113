"""Extraction, chunking and embeddings: pure Python, no database and no Django."""
from __future__ import annotations

import io
import os
import re
import threading
import time
import zipfile

import numpy as np
import pytest

from voicebots.knowledge import embeddings, extraction, filetypes
from voicebots.knowledge.chunking import Chunk, chunk_sections, chunk_text_for_embedding
from voicebots.knowledge.extraction import ExtractionError, Section, extract


def _words(text: str) -> int:
    return len(text.split())


# --- documents made at test time ------------------------------------------------

def _pdf(pages: list[str], *, encrypt: tuple[str, str | None] | None = None) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    if encrypt:
        pdf.set_encryption(owner_password=encrypt[0], user_password=encrypt[1])
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def _pdf_without_text() -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 100, 60, style="F")
    return bytes(pdf.output())


def _docx() -> bytes:
    import docx

    document = docx.Document()
    document.add_heading("Clinic handbook", level=0)
    document.add_paragraph("Welcome to the clinic.")
    document.add_heading("Opening hours", level=1)
    document.add_paragraph("We open at nine on weekdays.")
    document.add_heading("Saturday", level=2)
    document.add_paragraph("On Saturday we open from 9am to 1pm.")
    table = document.add_table(rows=2, cols=2)
    for row, cells in zip(table.rows, [("Day", "Hours"), ("Sunday", "Closed")]):
        for cell, text in zip(row.cells, cells):
            cell.text = text
    document.add_heading("Parking", level=1)
    document.add_paragraph("The parking lot is behind the building.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _zip(members: dict[str, bytes], *, zeros: tuple[str, int] | None = None) -> bytes:
    """A zip of `members`, plus optionally a member of `zeros[1]` MiB of zeros written in a stream."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
        if zeros:
            block = bytes(1024 * 1024)
            with archive.open(zeros[0], "w", force_zip64=True) as member:
                for _ in range(zeros[1]):
                    member.write(block)
    return buffer.getvalue()


_DOCUMENT_XML = (
    b'<?xml version="1.0" encoding="UTF-8"?><w:document '
    b'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body/></w:document>'
)


# --- PDF --------------------------------------------------------------------------

def test_pdf_gives_one_section_per_page_with_page_numbers():
    sections = extract(_pdf(["First page about opening hours.", "Second page about parking."]), filetypes.PDF)

    assert [section.page for section in sections] == [1, 2]
    assert "opening hours" in sections[0].text
    assert "parking" in sections[1].text
    assert all(section.heading_path == () for section in sections)


def test_pdf_with_a_user_password_is_refused():
    data = _pdf(["Secret text."], encrypt=("owner-secret", "user-secret"))

    with pytest.raises(ExtractionError, match="password-protected"):
        extract(data, filetypes.PDF)


def test_pdf_encrypted_only_against_editing_is_read():
    data = _pdf(["Readable despite encryption."], encrypt=("owner-secret", None))

    assert "Readable despite encryption." in extract(data, filetypes.PDF)[0].text


@pytest.mark.parametrize("damage", [
    lambda data: data[: len(data) // 3],
    lambda data: b"%PDF-1.7\n" + os.urandom(4000),
    lambda data: data[:200] + bytes(len(data) - 200),
])
def test_damaged_pdf_is_refused(damage):
    data = damage(_pdf(["Some text that will be lost."]))

    with pytest.raises(ExtractionError, match="damaged"):
        extract(data, filetypes.PDF)


def test_pdf_without_text_is_refused_as_a_probable_scan():
    with pytest.raises(ExtractionError, match="no extractable text"):
        extract(_pdf_without_text(), filetypes.PDF)


# --- DOCX -------------------------------------------------------------------------

def test_docx_follows_headings_and_includes_tables():
    sections = extract(_docx(), filetypes.DOCX)

    by_path = {section.heading_path: section.text for section in sections}
    assert by_path == {
        ("Clinic handbook",): "Welcome to the clinic.",
        ("Clinic handbook", "Opening hours"): "We open at nine on weekdays.",
        ("Clinic handbook", "Opening hours", "Saturday"):
            "On Saturday we open from 9am to 1pm.\n\nDay | Hours\nSunday | Closed",
        ("Clinic handbook", "Parking"): "The parking lot is behind the building.",
    }
    assert [section.heading_path[-1] for section in sections] == [
        "Clinic handbook", "Opening hours", "Saturday", "Parking"]


def test_docx_expanding_past_the_size_limit_is_refused_quickly():
    data = _zip({"word/document.xml": _DOCUMENT_XML}, zeros=("word/media/zeros.bin", 300))
    assert len(data) < 2 * 1024 * 1024

    started = time.thread_time()  # CPU time: nothing was inflated, whatever the machine's load
    with pytest.raises(ExtractionError, match="expands to more than 200 MB"):
        extract(data, filetypes.DOCX)
    assert time.thread_time() - started < 0.5


def test_docx_with_an_extreme_compression_ratio_is_refused():
    data = _zip({"word/document.xml": _DOCUMENT_XML}, zeros=("word/media/zeros.bin", 20))

    with pytest.raises(ExtractionError, match="expands to more than 200 times"):
        extract(data, filetypes.DOCX)


def test_docx_with_too_many_parts_is_refused(monkeypatch):
    monkeypatch.setattr(extraction, "DOCX_MAX_MEMBERS", 5)
    data = _zip({"word/document.xml": _DOCUMENT_XML, **{f"word/part{i}.xml": b"<x/>" for i in range(5)}})

    with pytest.raises(ExtractionError, match="more than 5 parts"):
        extract(data, filetypes.DOCX)


@pytest.mark.parametrize("data", [
    _zip({"word/document.xml": b"<not-xml"}),
    b"PK\x03\x04" + b"garbage" * 100,
])
def test_invalid_docx_is_refused(data):
    with pytest.raises(ExtractionError, match="DOCX"):
        extract(data, filetypes.DOCX)


# --- Markdown and HTML ---------------------------------------------------------

def test_markdown_sections_follow_atx_headings_and_lose_inline_syntax():
    markdown = (
        "Intro with a [link](https://example.com) and ![logo](logo.png).\n\n"
        "# Clinic\n"
        "Read **carefully**: `hours` may __change__.\n\n"
        "## Hours ##\n"
        "- Weekdays 8-5\n"
        "- Saturday 9-1\n\n"
        "```\n# not a heading\n```\n\n"
        "# Parking\n"
        "Behind the building.\n"
    )
    sections = extract(markdown.encode(), filetypes.MARKDOWN)

    assert [(s.heading_path, s.text) for s in sections] == [
        ((), "Intro with a link and ."),
        (("Clinic",), "Read carefully: hours may change."),
        (("Clinic", "Hours"), "- Weekdays 8-5\n- Saturday 9-1\n\n# not a heading"),
        (("Parking",), "Behind the building."),
    ]


def test_html_drops_page_furniture_and_keeps_headings():
    html = b"""<!doctype html><html><head><title>Clinic site</title>
    <style>p { color: red }</style><script>trackVisitor()</script></head><body>
    <nav><a href="/">Home</a> <a href="/about">About us</a></nav>
    <header>Call us today</header>
    <h1>Opening hours</h1><p>We open at <b>9am</b> on Saturday.</p>
    <h2>Holidays</h2><ul><li>Closed at Christmas</li><li>Closed at Easter</li></ul>
    <table><tr><th>Day</th><th>Hours</th></tr><tr><td>Sunday</td><td>Closed</td></tr></table>
    <aside>Related posts</aside><footer>Copyright 2024</footer><!-- a comment -->
    </body></html>"""
    sections = extract(html, filetypes.HTML)

    assert [(s.heading_path, s.text) for s in sections] == [
        (("Opening hours",), "We open at 9am on Saturday."),
        (("Opening hours", "Holidays"),
         "Closed at Christmas\nClosed at Easter\n\nDay | Hours\nSunday | Closed"),
    ]
    everything = " ".join(s.text for s in sections)
    for dropped in ("trackVisitor", "color", "Home", "Call us", "Related", "Copyright", "comment"):
        assert dropped not in everything


def test_html_title_is_the_root_heading_only_without_an_h1():
    html = b"<html><head><title>FAQ</title></head><body><h2>Parking</h2><p>Behind.</p></body></html>"

    assert extract(html, filetypes.HTML) == [Section("Behind.", ("FAQ", "Parking"), None)]


# --- plain text -----------------------------------------------------------------

@pytest.mark.parametrize("data", [
    "café résumé naïve".encode("latin-1"),
    "café résumé naïve".encode("utf-8"),
    "café résumé naïve".encode("utf-8-sig"),
    "café résumé naïve".encode("utf-16"),
    "café résumé naïve".encode("utf-16-le"),
    "café résumé naïve".encode("utf-16-be"),
])
def test_text_in_common_encodings(data):
    assert extract(data, filetypes.TEXT) == [Section("café résumé naïve", (), None)]


def test_text_whitespace_is_normalised_but_paragraphs_kept():
    text = "One\u200b  two\tthree\u00ad.\r\n\r\n\r\n\r\nNext   paragraph\rline."

    assert extract(text.encode(), filetypes.TEXT)[0].text == "One two three.\n\nNext paragraph\nline."


@pytest.mark.parametrize("data", [
    os.urandom(20_000),
    b"text\x00\x01\x02\x03" * 500,
])
def test_binary_junk_is_refused(data):
    with pytest.raises(ExtractionError, match="does not contain readable text"):
        extract(data, filetypes.TEXT)


def test_document_without_text_is_refused():
    with pytest.raises(ExtractionError, match="No extractable text"):
        extract(b" \n\n\t \n", filetypes.TEXT)


def test_document_over_the_text_limit_is_refused(monkeypatch):
    monkeypatch.setattr(extraction, "MAX_TEXT_CHARS", 1000)

    with pytest.raises(ExtractionError, match="too long"):
        extract(b"word " * 1000, filetypes.TEXT)


def test_unknown_content_type_is_refused():
    with pytest.raises(ExtractionError, match="not supported"):
        extract(b"data", "application/zip")


# --- chunking -------------------------------------------------------------------

def _paragraph(tag: str, sentences: int, words_per_sentence: int = 9) -> str:
    return " ".join(
        " ".join(f"{tag}w{s}x{w}" for w in range(words_per_sentence)) + "." for s in range(sentences)
    )


def test_chunks_respect_the_token_limit_and_never_mix_sections():
    sections = [
        Section("\n\n".join(_paragraph(f"a{p}", 1 + p % 7) for p in range(30)), ("A",), 1),
        Section("\n\n".join(_paragraph(f"b{p}", 12) for p in range(5)), ("A", "B"), 2),
        Section("short text", (), None),
    ]

    chunks = chunk_sections(sections, count_tokens=_words, max_tokens=50, overlap_tokens=10)

    assert [chunk.index for chunk in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert chunk.token_count == _words(chunk.text) <= 50
        section = next(s for s in sections if s.heading_path == chunk.heading_path)
        assert chunk.page == section.page
        assert set(chunk.text.split()) <= set(section.text.split())
    assert {chunk.heading_path for chunk in chunks} == {("A",), ("A", "B"), ()}
    # Every word of every section is in some chunk of that section.
    for section in sections:
        covered = {w for c in chunks if c.heading_path == section.heading_path for w in c.text.split()}
        assert covered == set(section.text.split())


def test_consecutive_chunks_of_a_section_overlap_by_whole_sentences():
    section = Section(_paragraph("p", 40), ("Only",), None)

    chunks = chunk_sections([section], count_tokens=_words, max_tokens=50, overlap_tokens=20)

    assert len(chunks) > 3
    for previous, current in zip(chunks, chunks[1:]):
        sentences = [part.rstrip(".") + "." for part in current.text.split(". ")]
        carried = [" ".join(sentences[:n]) for n in range(1, len(sentences))
                   if previous.text.endswith(" ".join(sentences[:n]))]
        assert carried, "no sentence of the previous chunk was carried over"
        assert 0 < _words(carried[-1]) <= 20


def test_paragraphs_that_fit_stay_whole():
    paragraphs = [_paragraph(f"q{p}", 2) for p in range(6)]  # 20 words each
    chunks = chunk_sections([Section("\n\n".join(paragraphs), (), None)],
                            count_tokens=_words, max_tokens=45, overlap_tokens=5)

    assert [chunk.text for chunk in chunks] == [
        "\n\n".join(paragraphs[0:2]), "\n\n".join(paragraphs[2:4]), "\n\n".join(paragraphs[4:6])]


def test_overlong_sentences_are_split_by_words_and_overlong_words_stay_whole():
    run_on = " ".join(f"r{i}" for i in range(130))
    giant_word = "x" * 50
    section = Section(f"{run_on}\n\n{giant_word}", (), None)

    def characters_per_ten(text: str) -> int:  # the giant word alone is over the limit
        return sum(max(1, len(word) // 10) for word in text.split())

    chunks = chunk_sections([section], count_tokens=characters_per_ten, max_tokens=4, overlap_tokens=1)

    assert all(chunk.token_count <= 4 or chunk.text == giant_word for chunk in chunks)
    assert chunks[-1].text == giant_word and chunks[-1].token_count == 5
    words_seen = [w for chunk in chunks for w in chunk.text.split()]
    assert set(words_seen) == set(run_on.split()) | {giant_word}


def test_chunking_rejects_impossible_limits():
    with pytest.raises(ValueError):
        chunk_sections([], count_tokens=_words, max_tokens=10, overlap_tokens=10)
    with pytest.raises(ValueError):
        chunk_sections([], count_tokens=_words, max_tokens=0)


def test_text_for_embedding_starts_with_the_heading_path():
    chunk = Chunk("We open at nine.", ("Handbook", "Hours"), 3, 0, 4)

    assert chunk_text_for_embedding(chunk) == "Handbook > Hours\nWe open at nine."
    assert chunk_text_for_embedding(Chunk("Plain.", (), None, 0, 1)) == "Plain."


def test_a_thousand_pages_chunk_in_well_under_a_second():
    page = "\n\n".join(_paragraph(f"pg{p}", 5, 12) for p in range(8))  # ~480 words
    sections = [Section(page, ("Book", f"Chapter {n // 50}"), n) for n in range(1, 1001)]

    # This thread's CPU time: what chunking costs, not how busy the machine is (the suite runs four workers).
    started = time.thread_time()
    chunks = chunk_sections(sections, count_tokens=_words)
    elapsed = time.thread_time() - started

    assert len(chunks) >= 3000
    assert elapsed < 0.75, elapsed
    assert re.fullmatch(r"pg\d+w\d+x\d+", chunks[-1].text.split()[-1].rstrip("."))


# --- embeddings -----------------------------------------------------------------

@pytest.fixture(scope="module")
def embedder() -> embeddings.Embedder:
    return embeddings.get_embedder("minilm")


def test_embeddings_are_normalised_float32_rows(embedder):
    vectors = embedder.embed(["Saturday opening hours are 9am to 1pm", "", "parking"])

    assert embedder.dimension == 384
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)


def test_a_paraphrase_is_closer_than_an_unrelated_sentence(embedder):
    question, answer, unrelated = embedder.embed([
        "What time does the clinic open on Saturday?",
        "Saturday opening hours are 9am to 1pm",
        "Our parking lot is behind the building",
    ])

    assert question @ answer > question @ unrelated + 0.1


def test_batched_embeddings_equal_one_by_one(embedder):
    texts = [f"Sentence number {i} about {'clinic hours ' * (i % 7)}and parking." for i in range(100)]

    batched = embedder.embed(texts)
    single = np.vstack([embedder.embed([text]) for text in texts])

    np.testing.assert_allclose(batched, single, atol=1e-4)


def test_embedding_from_several_threads_gives_the_same_vectors(embedder):
    texts = [f"Question {i}: when is the clinic open?" for i in range(40)]
    expected = embedder.embed(texts)
    results: list[np.ndarray] = []

    def work() -> None:
        results.append(embedder.embed(texts))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 4
    for result in results:
        np.testing.assert_allclose(result, expected, atol=1e-5)


def test_token_counts_are_wordpieces_without_special_tokens(embedder):
    assert embedder.count_tokens("") == 0
    assert embedder.count_tokens("hello world") == 2
    assert embedder.count_tokens("The clinic opens at nine.") == 6
    long_text = "word " * 1000
    assert embedder.count_tokens(long_text) == 1000  # counting does not truncate


def test_a_string_instead_of_a_list_is_refused(embedder):
    with pytest.raises(TypeError):
        embedder.embed("not a list")


def test_get_embedder_is_a_process_wide_singleton(embedder, settings):
    settings.EMBEDDING_PROVIDER = "minilm"
    assert embeddings.get_embedder() is embedder
    assert embeddings.get_embedder("local") is embedder
    assert embeddings.get_embedder() is embeddings.get_embedder("minilm")


@pytest.fixture
def empty_query_cache():
    embeddings.clear_query_cache()
    yield
    embeddings.clear_query_cache()  # no fake vectors left for other tests


def test_a_repeated_query_is_embedded_once(embedder, monkeypatch, settings, empty_query_cache):
    settings.EMBEDDING_PROVIDER = "minilm"
    calls = []
    monkeypatch.setattr(embedder, "embed", lambda texts: calls.append(texts) or np.ones((1, 384), np.float32))

    first = embeddings.embed_query("When do you open?")
    again = embeddings.embed_query("When do you open?")
    other = embeddings.embed_query("Where do I park?")

    assert calls == [["When do you open?"], ["Where do I park?"]]
    assert again is first and first.shape == (384,)
    with pytest.raises(ValueError):
        first[0] = 2.0  # shared by every caller: read-only
    embeddings.clear_query_cache()
    embeddings.embed_query("When do you open?")
    assert len(calls) == 3 and other is not first


def test_unknown_embedding_provider_is_refused(settings):
    settings.EMBEDDING_PROVIDER = "word2vec"

    with pytest.raises(ValueError, match="supported: minilm, openai"):
        embeddings.get_embedder()
