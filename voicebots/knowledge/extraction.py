"""Turn an uploaded document into plain-text sections that follow its structure.

Pure Python (no Django), so it can run in a worker or a test without settings.
Every failure becomes an ExtractionError whose message is shown to the user.
"""
from __future__ import annotations

import io
import logging
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

import bs4
import charset_normalizer
import docx
import pypdf
from docx.table import Table
from docx.text.paragraph import Paragraph

from . import filetypes

logger = logging.getLogger(__name__)

MAX_TEXT_CHARS = 5_000_000
DOCX_MAX_UNCOMPRESSED_BYTES = 200 * 1024 * 1024
DOCX_MAX_COMPRESSION_RATIO = 200
DOCX_MAX_MEMBERS = 10_000
# Small members compress poorly or absurdly well without being dangerous, so the
# ratio only counts for members big enough to matter.
_RATIO_CHECK_MIN_BYTES = 1024 * 1024
# More than this share of control characters means the "text" is binary.
_MAX_CONTROL_SHARE = 0.01

_PDF_DAMAGED = "The PDF is damaged and cannot be read."
_DOCX_DAMAGED = "The DOCX file is damaged and cannot be read."
_UNREADABLE_TEXT = "The file does not contain readable text."


class ExtractionError(ValueError):
    """The document cannot be turned into text; the message says why, for the user."""


@dataclass(frozen=True)
class Section:
    text: str
    heading_path: tuple[str, ...]
    page: int | None


def extract(data: bytes, content_type: str, *, name: str = "") -> list[Section]:
    """The non-empty sections of a document of `content_type` (a filetypes constant)."""
    extractor = _EXTRACTORS.get(content_type)
    if extractor is None:
        raise ExtractionError(f"This file type is not supported; upload {filetypes.SUPPORTED_DESCRIPTION}.")
    sections: list[Section] = []
    total_chars = 0
    try:
        for section in extractor(data):
            total_chars += len(section.text)
            if total_chars > MAX_TEXT_CHARS:
                raise ExtractionError(
                    f"The document is too long (more than {MAX_TEXT_CHARS:,} characters of text)."
                )
            sections.append(section)
    except ExtractionError as exc:
        logger.info("Extraction of %r failed: %s", name, exc, exc_info=exc.__cause__ is not None)
        raise
    except Exception as exc:  # a bug or a parser failure: the upload still gets a clear answer
        logger.exception("Unexpected failure extracting %r", name)
        raise ExtractionError("The document could not be read.") from exc
    if not sections:
        raise ExtractionError("No extractable text was found in the document.")
    return sections


# --- whitespace -------------------------------------------------------------

_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff"))
_NEWLINES = re.compile(r"\r\n?|[\u2028\u2029\x0b\x85]")
_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_HORIZONTAL_SPACE = re.compile(r"[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
_SPACE_AROUND_NEWLINE = re.compile(r" ?\n ?")
_EXTRA_BLANK_LINES = re.compile(r"\n{3,}")


def normalise_whitespace(text: str) -> str:
    """Single spaces, \\n line ends and at most one blank line between paragraphs."""
    text = _NEWLINES.sub("\n", text.translate(_INVISIBLE))
    text = _CONTROLS.sub("", text.replace("\f", "\n\n"))
    text = _HORIZONTAL_SPACE.sub(" ", text)
    text = _SPACE_AROUND_NEWLINE.sub("\n", text)
    return _EXTRA_BLANK_LINES.sub("\n\n", text).strip()


def _section(text: str, heading_path: tuple[str, ...] = (), page: int | None = None) -> Section | None:
    text = normalise_whitespace(text)
    return Section(text, heading_path, page) if text else None


class _Outline:
    """Collects paragraphs under the heading path in force when they appear."""

    def __init__(self, root: tuple[str, ...] = ()) -> None:
        self._root = root
        self._headings: list[tuple[int, str]] = []
        self._paragraphs: list[str] = []

    def start_heading(self, level: int, title: str) -> Section | None:
        """Close the current section and open one under `title` (level 1 is the top)."""
        title = normalise_whitespace(title).replace("\n", " ")
        if not title:
            return None
        finished = self.finish()
        while self._headings and self._headings[-1][0] >= level:
            self._headings.pop()
        self._headings.append((level, title))
        return finished

    def add_paragraph(self, text: str) -> None:
        if text.strip():
            self._paragraphs.append(text)

    def finish(self) -> Section | None:
        path = self._root + tuple(title for _, title in self._headings)
        section = _section("\n\n".join(self._paragraphs), path)
        self._paragraphs = []
        return section


# --- PDF ----------------------------------------------------------------------

def _extract_pdf(data: bytes) -> Iterator[Section]:
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            _unlock_pdf(reader)
        page_count = len(reader.pages)
    except ExtractionError:
        raise
    except Exception as exc:  # pypdf raises many kinds of errors on malformed files
        raise ExtractionError(_PDF_DAMAGED) from exc
    found_text = False
    failed_pages = 0
    for number in range(1, page_count + 1):
        try:
            text = reader.pages[number - 1].extract_text() or ""
        except Exception:  # one broken page should not lose the others
            logger.warning("Could not read text from PDF page %d", number, exc_info=True)
            failed_pages += 1
            continue
        section = _section(text, page=number)
        if section:
            found_text = True
            yield section
    if not found_text:
        if failed_pages:
            raise ExtractionError(_PDF_DAMAGED)
        raise ExtractionError("The PDF has no extractable text (it may be a scan); upload a text PDF or a DOCX.")


def _unlock_pdf(reader: pypdf.PdfReader) -> None:
    """Open a PDF that is encrypted only against editing (empty user password)."""
    try:
        unlocked = reader.decrypt("") != pypdf.PasswordType.NOT_DECRYPTED
    except Exception as exc:  # e.g. an unsupported encryption method
        raise ExtractionError("The PDF is password-protected; upload an unprotected copy.") from exc
    if not unlocked:
        raise ExtractionError("The PDF is password-protected; upload an unprotected copy.")


# --- DOCX -------------------------------------------------------------------

_DOCX_HEADING_STYLE = re.compile(r"Heading ([1-6])")


def _extract_docx(data: bytes) -> Iterator[Section]:
    _check_docx_archive(data)
    try:
        document = docx.Document(io.BytesIO(data))
        yield from _docx_sections(document)
    except Exception as exc:  # python-docx and lxml raise many kinds of errors
        raise ExtractionError(_DOCX_DAMAGED) from exc


def _check_docx_archive(data: bytes) -> None:
    """Refuse archives that would expand into huge amounts of memory (zip bombs)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ExtractionError(_DOCX_DAMAGED) from exc
    if len(members) > DOCX_MAX_MEMBERS:
        raise ExtractionError(
            f"The DOCX file has more than {DOCX_MAX_MEMBERS:,} parts and was not processed."
        )
    if sum(member.file_size for member in members) > DOCX_MAX_UNCOMPRESSED_BYTES:
        raise ExtractionError(
            f"The DOCX file expands to more than {DOCX_MAX_UNCOMPRESSED_BYTES // (1024 * 1024)} MB "
            "and was not processed."
        )
    for member in members:
        if member.file_size >= _RATIO_CHECK_MIN_BYTES and (
            member.file_size > member.compress_size * DOCX_MAX_COMPRESSION_RATIO
        ):
            raise ExtractionError(
                f"The DOCX file expands to more than {DOCX_MAX_COMPRESSION_RATIO} times its size "
                "and was not processed."
            )


def _docx_sections(document) -> Iterator[Section]:
    outline = _Outline()
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            outline.add_paragraph(_docx_table_text(block))
            continue
        level = _docx_heading_level(block)
        if level is None:
            outline.add_paragraph(block.text)
        elif section := outline.start_heading(level, block.text):
            yield section
    if section := outline.finish():
        yield section


def _docx_heading_level(paragraph: Paragraph) -> int | None:
    """0 for the title, 1-6 for headings, None for body text."""
    style_name = (paragraph.style.name if paragraph.style is not None else None) or ""
    if style_name == "Title":
        return 0
    match = _DOCX_HEADING_STYLE.fullmatch(style_name)
    return int(match.group(1)) if match else None


def _docx_table_text(table: Table) -> str:
    """One line per row, cells separated by ' | ' (merged cells only once)."""
    lines = []
    for row in table.rows:
        seen: set[int] = set()
        cells = []
        for cell in row.cells:
            if id(cell._tc) in seen:  # a merged cell is repeated once per grid column
                continue
            seen.add(id(cell._tc))
            cells.append(_docx_cell_text(cell))
        lines.append(" | ".join(text for text in cells if text))
    return "\n".join(lines)


def _docx_cell_text(cell) -> str:
    parts = []
    for block in cell.iter_inner_content():
        parts.append(_docx_table_text(block) if isinstance(block, Table) else block.text.strip())
    return " ".join(part for part in parts if part)


# --- plain text and Markdown --------------------------------------------------------

_CHAOS_TOLERANCE = 0.01
_COHERENCE_TOLERANCE = 0.1
_NOT_TEXT = re.compile("[\x00-\x08\x0b\x0e-\x1f\ufffd]")


def decode_text(data: bytes) -> str:
    """The text in `data`, whatever its common encoding, or ExtractionError if it is binary."""
    encoding = filetypes.detect_text_encoding(data)
    if encoding is None:
        raise ExtractionError(_UNREADABLE_TEXT)
    if not encoding.startswith("utf"):
        encoding = _prefer_cp1252_on_a_tie(data, encoding)
    # Replacement characters stand in for the odd broken byte; many of them mean binary.
    text = data.decode(encoding, errors="replace")
    if len(_NOT_TEXT.findall(text)) > len(text) * _MAX_CONTROL_SHARE:
        raise ExtractionError(_UNREADABLE_TEXT)
    return text


def _prefer_cp1252_on_a_tie(data: bytes, detected: str) -> str:
    """cp1252 if charset-normalizer finds it as plausible as its own pick.

    On short or mixed Western text it cannot tell single-byte code pages apart
    and may pick cp1250 or cp775, turning "naïve" into "naďve"; cp1252 (a
    superset of Latin-1) is by far the most common of them.
    """
    matches = charset_normalizer.from_bytes(data)
    best = matches.best()
    if best is None:
        return detected
    for match in matches:
        if (match.encoding == "cp1252" and match.chaos <= best.chaos + _CHAOS_TOLERANCE
                and match.coherence >= best.coherence - _COHERENCE_TOLERANCE):
            return "cp1252"
    return detected


def _extract_text(data: bytes) -> Iterator[Section]:
    if section := _section(decode_text(data)):
        yield section


_MD_FENCE = re.compile(r" {0,3}(```|~~~)")
_MD_HEADING = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*")
_MD_THEMATIC_BREAK = re.compile(r" {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*")
_MD_TABLE_DIVIDER = re.compile(r" {0,3}\|?(?:[ \t]*:?-{3,}:?[ \t]*\|)+(?:[ \t]*:?-{3,}:?)?[ \t]*")
_MD_REFERENCE_DEFINITION = re.compile(r" {0,3}\[[^\]]+\]:\s*\S+.*")
_MD_BLOCKQUOTE = re.compile(r"^ {0,3}(> ?)+")
_MD_IMAGE = re.compile(r"!\[[^\]]*\](\([^)]*\)|\[[^\]]*\])")
_MD_LINK = re.compile(r"\[([^\]]*)\](\([^)]*\)|\[[^\]]*\])")
_MD_AUTOLINK = re.compile(r"<((?:https?|mailto):[^>\s]+)>")
_MD_SINGLE_STAR = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")


def _extract_markdown(data: bytes) -> Iterator[Section]:
    outline = _Outline()
    paragraph: list[str] = []
    in_fence = False
    for line in decode_text(data).splitlines():
        if _MD_FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            paragraph.append(line)
            continue
        heading = _MD_HEADING.fullmatch(line)
        if heading:
            outline.add_paragraph("\n".join(paragraph))
            paragraph = []
            title = _strip_markdown_inline(heading.group(2) or "")
            if section := outline.start_heading(len(heading.group(1)), title):
                yield section
        elif not line.strip():
            outline.add_paragraph("\n".join(paragraph))
            paragraph = []
        elif not _is_markdown_decoration(line):
            paragraph.append(_strip_markdown_inline(_MD_BLOCKQUOTE.sub("", line)))
    outline.add_paragraph("\n".join(paragraph))
    if section := outline.finish():
        yield section


def _is_markdown_decoration(line: str) -> bool:
    return bool(
        _MD_THEMATIC_BREAK.fullmatch(line)
        or _MD_TABLE_DIVIDER.fullmatch(line)
        or _MD_REFERENCE_DEFINITION.fullmatch(line)
    )


def _strip_markdown_inline(text: str) -> str:
    text = _MD_IMAGE.sub("", text)
    text = _MD_LINK.sub(r"\1", text)
    text = _MD_AUTOLINK.sub(r"\1", text)
    text = text.replace("**", "").replace("__", "").replace("`", "")
    return _MD_SINGLE_STAR.sub(r"\1", text)


# --- HTML ---------------------------------------------------------------------

_HTML_DROPPED = ("script", "style", "noscript", "nav", "header", "footer", "aside", "form", "svg",
                 "iframe", "template", "head", "title", "object", "embed", "canvas")
_HTML_HEADINGS = {f"h{level}": level for level in range(1, 7)}
_HTML_PARAGRAPH_TAGS = {"p", "div", "section", "article", "main", "blockquote", "pre", "table", "ul",
                        "ol", "dl", "figure", "address", "details", "hr", "caption", "body"}
_HTML_LINE_TAGS = {"br", "li", "tr", "dt", "dd", "summary", "figcaption"}
_HTML_CELL_TAGS = {"td", "th"}
_HTML_SPACE = re.compile(r"\s+")


def _parse_html(text: str) -> bs4.BeautifulSoup:
    try:
        return bs4.BeautifulSoup(text, "lxml")
    except bs4.FeatureNotFound:
        return bs4.BeautifulSoup(text, "html.parser")


def _extract_html(data: bytes) -> Iterator[Section]:
    soup = _parse_html(decode_text(data))
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for element in soup.find_all(_HTML_DROPPED):
        element.decompose()
    root = (title,) if title and soup.find("h1") is None else ()
    yield from _html_sections(soup.body or soup, _Outline(root))


class _HtmlText:
    """The running text of the current section, with HTML's block structure as line breaks."""

    # Separators owed before the next text, weakest first; the strongest requested wins.
    _SEPARATORS = ("", " ", " | ", "\n", "\n\n")

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._owed = ""

    def add(self, text: str) -> None:
        if not text.strip():
            self.separate(" ")
            return
        if self._parts:
            self._parts.append(self._owed)
        self._owed = ""
        self._parts.append(text)

    def separate(self, separator: str) -> None:
        self._owed = max(self._owed, separator, key=self._SEPARATORS.index)

    def take(self) -> str:
        text = "".join(self._parts)
        self._parts = []
        self._owed = ""
        return text


def _html_sections(root: bs4.Tag, outline: _Outline) -> Iterator[Section]:
    text = _HtmlText()
    # An explicit stack instead of recursion: deeply nested markup must not blow the stack.
    stack: list[tuple[bs4.PageElement, bool]] = [(root, False)]
    pre_depth = 0
    while stack:
        node, leaving = stack.pop()
        if isinstance(node, bs4.NavigableString):
            if type(node) in (bs4.NavigableString, bs4.CData):  # not comments or doctypes
                text.add(str(node) if pre_depth else _HTML_SPACE.sub(" ", str(node)))
            continue
        if not isinstance(node, bs4.Tag):
            continue
        name = node.name
        if leaving:
            if name == "pre":
                pre_depth -= 1
            _html_block_break(name, text, cells=False)
            continue
        if name in _HTML_HEADINGS:
            outline.add_paragraph(text.take())
            if section := outline.start_heading(_HTML_HEADINGS[name], node.get_text(" ", strip=True)):
                yield section
            continue
        _html_block_break(name, text, cells=True)
        if name == "pre":
            pre_depth += 1
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(node.contents))
    outline.add_paragraph(text.take())
    if section := outline.finish():
        yield section


def _html_block_break(name: str, text: _HtmlText, *, cells: bool) -> None:
    """Block elements break lines around them; cells are separated where they start."""
    if name in _HTML_PARAGRAPH_TAGS:
        text.separate("\n\n")
    elif name in _HTML_LINE_TAGS:
        text.separate("\n")
    elif cells and name in _HTML_CELL_TAGS:
        text.separate(" | ")


_EXTRACTORS = {
    filetypes.PDF: _extract_pdf,
    filetypes.DOCX: _extract_docx,
    filetypes.MARKDOWN: _extract_markdown,
    filetypes.HTML: _extract_html,
    filetypes.TEXT: _extract_text,
}
