"""Benchmark of the knowledge subsystem: ingestion throughput, retrieval latency and recall.

    .venv/bin/python -m bench.knowledge [--quick]

Runs in its own database, `voicebots_bench`, on the server of DATABASE_URL (or the embedded
PostgreSQL when DATABASE_URL is unset), never in the development database. Every run first
deletes the data of earlier runs, so runs are repeatable.

1. Ingestion: Markdown and PDF documents go through the real pipeline, `processing.process()`.
2. Retrieval: `retrieval.search()` end to end over 10k and 100k chunks in scope of one bot.
   Embedding 100k distinct chunks would take over an hour here, so the corpus is a set of
   really embedded passages plus filler rows that are perturbed copies of them (see FILLER_NOTE).
3. Recall@5 and MRR@5 of labelled questions whose answer passages are hidden in that corpus.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from voicebots.knowledge.chunking import HEADING_SEPARATOR  # pure Python: safe before django.setup()

BENCH_DATABASE = "voicebots_bench"
ACCOUNT_PREFIX = "bench-knowledge"
VECTOR_INDEX = "chunk_embedding_hnsw"
SEED = 20240611
TOP_K = 5
CORPUS_DOCUMENTS = 20  # the documents attached to the benchmark's bot
EMBED_BATCH = 64  # the batch processing.py embeds with
# Per-dimension noise of the filler embeddings. It leaves a copy at cosine ~0.71 from its source
# and two copies of one source at ~0.5, near a real passage's 10th nearest real passage (~0.68;
# each run prints these). Much less noise makes tight clumps of near-duplicates, which HNSW
# navigates far worse than real text, so the index would look worse than it is.
FILLER_NOISE = 0.05
TARGET_P95_MS = 25.0
TARGET_RECALL = 0.9
TARGET_EMBED_RATE = 150.0
FILLER_NOTE = (
    "Corpus note: only the {real:,} base passages and labelled targets are embedded by the model;\n"
    "every other chunk is filler: a base passage's embedding plus Gaussian noise (sigma {noise} per\n"
    "dimension, re-normalised) with that passage's words shuffled. Mean cosine of a copy to its source\n"
    "{to_source:.2f}, between two copies of one source {between:.2f}; a real passage's 10th nearest real\n"
    "passage is at {real_10th:.2f}. A noisy copy is less similar to any query than its source, so filler\n"
    "crowds the search less than 100k distinct passages would: read recall at 100k as optimistic."
)


@dataclass(frozen=True)
class Scale:
    markdown_files: int
    sections_per_file: int
    pdf_pages: int
    base_passages: int
    corpus_sizes: tuple[int, ...]
    targets: int = 50
    queries: int = 200
    warmup: int = 20


FULL = Scale(markdown_files=3, sections_per_file=20, pdf_pages=30, base_passages=2000,
             corpus_sizes=(10_000, 100_000))
QUICK = Scale(markdown_files=1, sections_per_file=6, pdf_pages=6, base_passages=300, corpus_sizes=(10_000,))


# --- The benchmark's own database --------------------------------------------------------

def use_bench_database() -> None:
    """Point Django at `voicebots_bench` (created if missing), set it up and migrate it."""
    import django
    from django.apps import apps

    if apps.ready:  # another benchmark of this process set Django up already
        from django.db import connection

        if connection.settings_dict["NAME"] != BENCH_DATABASE:
            raise RuntimeError(f"Django is set up on {connection.settings_dict['NAME']!r}, not {BENCH_DATABASE!r}.")
        return
    server_url = os.environ.get("DATABASE_URL") or _embedded_postgres_url()
    create_database_if_missing(server_url, BENCH_DATABASE)
    os.environ["DATABASE_URL"] = with_database(server_url, BENCH_DATABASE)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _embedded_postgres_url() -> str:
    from config import embedded

    return embedded.postgres_url()


def with_database(url: str, name: str) -> str:
    """`url` naming database `name`; the query (the embedded server's `?host=`) is kept."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def create_database_if_missing(server_url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(server_url, autocommit=True) as connection:
        if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


# --- Generated text: a retailer's knowledge base ------------------------------------------

PLACES = (
    "Riverside", "Oakwood", "Harbor Point", "Maple Grove", "Cedar Hill", "Lakeside", "Northgate", "Southbridge",
    "Elm Park", "Westfield", "Kingsway", "Bayview", "Stonebridge", "Fairview", "Highland", "Brookside",
    "Willow Creek", "Pinecrest", "Meadowbrook", "Ashford", "Clearwater", "Redwood", "Silver Lake",
    "Granite Falls", "Sunnyvale", "Beacon Hill", "Foxglove", "Hawthorne", "Ironwood", "Juniper", "Larkspur",
    "Mill Valley", "Newhaven", "Orchard Square", "Parkside", "Queensbury", "Rosedale", "Summit", "Thornbury",
    "Victoria Dock", "Abbey Mead", "Barrow Cross", "Castle Quay", "Dunmore", "Eastleigh", "Ferndale",
    "Glenrothes", "Holloway", "Inverbay", "Kelso Green", "Lindenford", "Marston", "Norbury", "Old Mill",
    "Pembury", "Radleigh", "Saltcoats", "Tidewater", "Upton Vale", "Wexcombe",
)
PRODUCT_NAMES = (
    "Aurora", "Nimbus", "Vega", "Atlas", "Zephyr", "Orion", "Lumen", "Cascade", "Titan", "Solace", "Quill",
    "Echo", "Polar", "Ember", "Drift", "Halo", "Pulse", "Nova", "Sierra", "Breeze", "Kestrel", "Juno",
)
PRODUCT_MODELS = ("X2", "Pro", "Mini", "S", "Max", "Lite", "3", "Plus", "Go", "500")
PRODUCT_TYPES = (
    "blender", "wireless router", "desk lamp", "hiking backpack", "ceiling fan", "smart thermostat", "e-reader",
    "water filter jug", "pressure washer", "memory-foam pillow", "bluetooth speaker", "air purifier",
    "pizza oven", "electric scooter", "baby monitor", "fitness tracker", "espresso machine", "camping tent",
    "dehumidifier", "cordless drill", "robot vacuum", "rice cooker", "electric toothbrush", "dashcam",
)
CATEGORIES = (
    "garden furniture", "kitchen appliances", "bicycles", "mattresses", "laptops", "running shoes",
    "children's toys", "winter coats", "power tools", "televisions", "sofas", "board games", "pet beds",
    "cookware", "camping gear", "smartphones", "office chairs", "rugs", "light fittings", "paint",
    "bathroom fittings", "curtains", "printers", "headphones", "baby car seats", "barbecues", "wardrobes",
    "washing machines", "guitars", "school uniforms",
)
SLOT_CHOICES = {
    "day": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "time_am": ("7:00 am", "7:30 am", "8:00 am", "8:30 am", "9:00 am", "9:30 am", "10:00 am"),
    "time_pm": ("5:00 pm", "5:30 pm", "6:00 pm", "6:30 pm", "7:00 pm", "7:30 pm", "8:00 pm", "9:00 pm", "10:00 pm"),
    "minutes": ("30", "45", "60", "90", "120", "180"),
    "service": ("key cutting", "watch battery replacement", "phone screen repairs", "bicycle servicing",
                "suit alterations", "photo printing", "gift wrapping", "parcel collection", "eye tests",
                "paint mixing", "laptop repairs", "shoe repairs", "engraving", "hearing checks"),
    "floor": ("ground", "first", "second", "lower ground"),
    "street": ("High Street", "Station Road", "Church Lane", "Mill Road", "Queen's Avenue", "Market Street",
               "Bridge Street", "Victoria Road", "Park Lane", "Harbour Way", "London Road", "Castle Street"),
    "landmark": ("railway station", "town hall", "public library", "cinema", "football ground", "river bridge",
                 "bus station", "hospital", "market square", "swimming pool", "cathedral", "retail park"),
    "person": ("Priya Shah", "Tom Walker", "Aisha Khan", "Liam O'Connor", "Grace Chen", "Marek Nowak",
               "Sofia Rossi", "Daniel Okafor", "Emma Lindqvist", "Hassan Ali", "Chloe Martin", "Ravi Patel"),
    "colours": ("black and silver", "white, grey or sage green", "midnight blue", "red, cream or charcoal",
                "matte black only", "brushed steel and copper", "ocean teal or sand"),
    "compat": ("Alexa and Google Home", "Apple HomeKit", "Android and iOS phones", "Windows and macOS",
               "USB-C chargers", "Zigbee hubs", "Matter smart-home hubs", "standard camera tripods"),
    "part": ("filter", "battery", "blade", "power adapter", "remote control", "glass jug", "charging cable",
             "lid", "brush head", "carry case"),
    "days": ("14", "21", "28", "30", "45", "60", "90", "100", "365"),
    "price2": ("£25", "£40", "£50", "£75", "£100", "£150"),
    "region": ("Scotland", "Wales", "Northern Ireland", "the Channel Islands", "the Isle of Man",
               "the Scottish Highlands", "Cornwall", "the Isles of Scilly"),
    "payment": ("credit card", "debit card", "PayPal account", "gift card", "store credit account"),
    "workshop": ("gardening", "DIY", "cooking", "coding for kids", "knitting", "bike maintenance", "upcycling"),
    "quality": ("quiet motor", "solid build", "long battery life", "simple controls", "compact size",
                "fast heat-up time", "clear display"),
    "brand": ("Hartley", "Nordvik", "Brightwell", "Calder & Moss", "Kinetix", "Ashby", "Lumio", "Tern"),
    "side": ("north", "south", "east", "west", "car park", "high street"),
    "depot": ("Daventry", "Wakefield", "Bristol", "Motherwell", "Thurrock", "Crewe"),
}


@dataclass(frozen=True)
class Template:
    kind: str  # what the fact is about: "branch", "product" or "category"
    topic: str  # the section of the subject's page the fact belongs to
    statement: str
    question: str = ""  # a paraphrase asking for the fact; empty for facts never asked about


TEMPLATES = (
    Template("branch", "Visiting", "The {branch} branch closes at {time_pm} on {day}s.",
             "When does the {branch} store shut on {day}?"),
    Template("branch", "Visiting", "On {day}s the {branch} branch opens its doors at {time_am}.",
             "What time can I get into the {branch} shop on a {day} morning?"),
    Template("branch", "Visiting", "Parking at the {branch} store is free for the first {minutes} minutes.",
             "How long can I leave my car at {branch} without paying?"),
    Template("branch", "Visiting", "The {branch} car park has {count} charging points for electric vehicles.",
             "How many spots are there to plug in an electric car at {branch}?"),
    Template("branch", "Visiting", "The {branch} branch is on {street}, next to the {landmark}.",
             "Where exactly is the {branch} shop?"),
    Template("branch", "Visiting", "Step-free access at {branch} is through the {side} entrance, with {count} "
             "accessible parking bays by the door."),
    Template("branch", "Services and contacts", "The {branch} branch offers {service} at the customer desk on "
             "the {floor} floor.", "Which level should I go to for {service} in the {branch} shop?"),
    Template("branch", "Services and contacts", "You can reach the {branch} store by phone on {phone}.",
             "What number should I ring to speak to someone at {branch}?"),
    Template("branch", "Services and contacts", "The manager of the {branch} branch is {person}.",
             "Who is in charge of the {branch} store?"),
    Template("branch", "Services and contacts", "The {branch} store stocks a wide range of {category} and {category2}."),
    Template("branch", "Services and contacts", "The {branch} team runs free {workshop} workshops on the first "
             "{day} of every month."),
    Template("branch", "Services and contacts", "The {branch} branch was refurbished in {year} and now has a café "
             "on the {floor} floor."),
    Template("product", "Buying", "The {product} comes with a {years}-year manufacturer's warranty.",
             "How long is the {product} guaranteed for?"),
    Template("product", "Buying", "The {product} costs {price} and comes in {colours}.",
             "How much do I have to pay for the {product}?"),
    Template("product", "Buying", "A replacement {part} for the {product} costs {price}.",
             "What do you charge for a new {part} for the {product}?"),
    Template("product", "Buying", "The {product} was launched in {year} and is designed by {brand}."),
    Template("product", "Buying", "Customers often praise the {product} for its {quality}."),
    Template("product", "Buying", "In the box you will find the {product}, a spare {part} and a quick-start guide."),
    Template("product", "Using", "The {product} weighs {weight} kg without its packaging.",
             "How heavy is the {product}?"),
    Template("product", "Using", "A full charge of the {product} lasts about {hours} hours.",
             "How long will the {product} run before it needs recharging?"),
    Template("product", "Using", "The {product} works with {compat} out of the box.",
             "Which systems can the {product} be used with?"),
    Template("product", "Using", "Clean the filter of the {product} every {weeks} weeks to keep it working well.",
             "How often does the {product} need its filter washed?"),
    Template("product", "Using", "Store the {product} somewhere dry, between {low} and {high} degrees Celsius."),
    Template("category", "Delivery and returns", "Unused {category} can be returned within {days} days with "
             "the receipt.", "How long do I have to take back {category} I don't want?"),
    Template("category", "Delivery and returns", "Standard delivery of {category} costs {price}, and orders over "
             "{price2} ship free.", "What is the shipping charge for {category}?"),
    Template("category", "Delivery and returns", "Express delivery of {category} to {region} takes {count} "
             "working days.", "How quickly can {category} be sent to {region} with the fast option?"),
    Template("category", "Delivery and returns", "Refunds for {category} go back to your {payment} within "
             "{count} working days.", "How soon will I get my money back after returning {category}?"),
    Template("category", "Delivery and returns", "Faulty {category} are replaced free of charge within "
             "{months} months of purchase."),
    Template("category", "Delivery and returns", "Deliveries of {category} can be tracked by text message once "
             "they leave our {depot} depot."),
    Template("category", "Rewards and services", "Loyalty members earn {points} points for every pound spent on "
             "{category}.", "How many reward points do I collect when buying {category}?"),
    Template("category", "Rewards and services", "Home assembly of {category} is available for {price} per item.",
             "Can someone put my {category} together at home, and what does it cost?"),
    Template("category", "Rewards and services", "Our {category} range includes models from {brand} and {brand2}."),
    Template("category", "Rewards and services", "Interest-free credit on {category} is available for purchases "
             "over {price2}."),
    Template("category", "Rewards and services", "We take away and recycle your old {category} for {price} when "
             "we deliver new ones."),
)
TITLES = {"branch": "{} branch", "product": "{}", "category": "Buying {}"}


@dataclass(frozen=True)
class Passage:
    heading_path: tuple[str, ...]
    text: str
    question: str = ""  # set on labelled targets: the question this passage answers

    def for_embedding(self) -> str:
        # What processing embeds: the heading path above the chunk's text.
        return HEADING_SEPARATOR.join(self.heading_path) + "\n" + self.text


class TextGenerator:
    """Seeded FAQ-like passages about a retailer's branches, products and buying policies.

    A passage is one section (topic) of one subject's page and states each of the topic's
    facts once, so no fact is stated twice, with different values, anywhere in the corpus:
    the one passage a labelled question asks about is its only right answer.
    """

    def __init__(self, seed: int = SEED):
        self.rng = random.Random(seed)
        places = list(PLACES) + [f"{place} {side}" for place in PLACES for side in ("North", "South", "East", "West")]
        products = [f"{name} {model} {kind}" for name in PRODUCT_NAMES for model in PRODUCT_MODELS
                    for kind in PRODUCT_TYPES]
        self.subjects = {"branch": self.rng.sample(places, 200), "product": self.rng.sample(products, 1000),
                         "category": list(CATEGORIES)}
        self.topics = {(t.kind, t.topic): [u for u in TEMPLATES if (u.kind, u.topic) == (t.kind, t.topic)]
                       for t in TEMPLATES}
        sections = [(kind, subject, topic) for kind, topic in self.topics for subject in self.subjects[kind]]
        self.rng.shuffle(sections)
        self.sections = iter(sections)  # each section of each subject is written once

    def passages(self, count: int) -> list[Passage]:
        return [self._passage(*next(self.sections)) for _ in range(count)]

    def targets(self, count: int) -> list[Passage]:
        """Passages, each with a question about one of its facts."""
        targets = []
        while len(targets) < count:
            kind, subject, topic = next(self.sections)
            askable = [t for t in self.topics[kind, topic] if t.question]
            targets.append(self._passage(kind, subject, topic, asked=self.rng.choice(askable)))
        return targets

    def random_question(self) -> str:
        template = self.rng.choice([t for t in TEMPLATES if t.question])
        subject = self.rng.choice(self.subjects[template.kind])
        return template.question.format(**self._slots(template.kind, subject))

    def shuffled(self, text: str) -> str:
        words = text.split()
        self.rng.shuffle(words)
        return " ".join(words)

    def _passage(self, kind: str, subject: str, topic: str, asked: Template | None = None) -> Passage:
        templates = self.rng.sample(self.topics[kind, topic], len(self.topics[kind, topic]))
        slots = [self._slots(kind, subject) for _ in templates]
        text = " ".join(t.statement.format(**values) for t, values in zip(templates, slots))
        question = asked.question.format(**slots[templates.index(asked)]) if asked else ""
        return Passage((TITLES[kind].format(subject), topic), text, question)

    def _slots(self, kind: str, subject: str) -> dict[str, str]:
        rng = self.rng
        slots = {name: rng.choice(options) for name, options in SLOT_CHOICES.items()}
        slots.update(
            branch=rng.choice(PLACES), product=rng.choice(self.subjects["product"]),
            category=rng.choice(CATEGORIES), category2=rng.choice(CATEGORIES),
            brand2=rng.choice(SLOT_CHOICES["brand"]), phone=f"0{rng.randint(1100, 1999)} {rng.randint(100000, 999999)}",
            count=str(rng.randint(2, 24)), years=str(rng.randint(1, 5)), hours=str(rng.randint(4, 60)),
            weeks=str(rng.randint(1, 12)), points=str(rng.randint(1, 10)), year=str(rng.randint(2008, 2024)),
            months=str(rng.randint(3, 36)), low=str(rng.randint(0, 10)), high=str(rng.randint(25, 40)),
            weight=f"{rng.uniform(0.3, 25):.1f}", price=f"£{rng.randint(5, 900)}.{rng.choice(('00', '49', '99'))}",
        )
        slots[kind] = subject
        return slots


# --- Documents for the ingestion pipeline ---------------------------------------------------

PARAGRAPHS_PER_SECTION = 4  # about 450 tokens: two or three chunks of the chunker's 200


def markdown_document(generator: TextGenerator, sections: int) -> bytes:
    """A handbook of `sections` `##` sections of four paragraphs each."""
    lines = ["# Customer handbook", ""]
    for _ in range(sections):
        passages = generator.passages(PARAGRAPHS_PER_SECTION)
        lines += [f"## {' - '.join(passages[0].heading_path)}", ""]
        for passage in passages:
            lines += [passage.text, ""]
    return "\n".join(lines).encode()


def pdf_document(generator: TextGenerator, pages: int) -> tuple[bytes, int]:
    """A text PDF of about `pages` pages (a heading and four paragraphs each) and its real page count."""
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos

    pdf = FPDF(format="A4")
    for _ in range(pages):
        passages = generator.passages(PARAGRAPHS_PER_SECTION)
        pdf.add_page()
        pdf.set_font("Helvetica", style="B", size=14)
        pdf.multi_cell(0, 8, " - ".join(passages[0].heading_path), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font("Helvetica", size=11)
        for passage in passages:
            pdf.multi_cell(0, 6, passage.text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.ln(3)
    return bytes(pdf.output()), pdf.page_no()


# --- Data set-up -------------------------------------------------------------------------

def delete_previous_runs() -> None:
    """Delete earlier runs' accounts (their documents and chunks cascade) and tidy the table.

    The HNSW index is dropped first: removing 100k rows from the graph during VACUUM costs
    far more than rebuilding the index on the table that remains."""
    from django.db import connection

    from voicebots.accounts.models import Account

    drop_vector_index()
    Account.objects.filter(name__startswith=ACCOUNT_PREFIX).delete()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE knowledge_chunk")
    create_vector_index()


def create_bench_account(purpose: str):
    from voicebots.accounts.services import create_account

    account, _token = create_account(f"{ACCOUNT_PREFIX}-{purpose}")
    return account


def stored_document(account, name: str, content_type: str, data: bytes):
    """A Knowledgebase row with its file saved to storage, as the upload view makes it."""
    from django.core.files.base import ContentFile

    from voicebots.knowledge.models import Knowledgebase

    document = Knowledgebase(account=account, name=name, size=len(data), content_type=content_type,
                             checksum=hashlib.sha256(data).hexdigest())
    document.file.save(name, ContentFile(data), save=False)
    document.save()
    return document


def corpus_documents(account, count: int) -> list:
    """Ready documents to hang the loaded chunks on; their files are never read."""
    from voicebots.knowledge.models import Knowledgebase

    return [Knowledgebase.objects.create(
        account=account, name=f"corpus-{number:02d}.md", file=f"bench/corpus-{number:02d}.md",
        content_type="text/markdown", checksum=f"bench-{number}", status=Knowledgebase.Status.READY,
        serving_version=1,
    ) for number in range(count)]


def migrated_vector_index():
    """The HNSW index exactly as the migrations define it."""
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    model_state = MigrationLoader(connection).project_state().models["knowledge", "chunk"]
    return next(index for index in model_state.options["indexes"] if index.name == VECTOR_INDEX)


def drop_vector_index() -> None:
    from django.db import connection

    from voicebots.knowledge.models import Chunk

    with connection.schema_editor() as editor:
        editor.remove_index(Chunk, migrated_vector_index())  # DROP INDEX IF EXISTS


def create_vector_index() -> float:
    """Build the HNSW index (the migration's definition); returns the seconds it took."""
    from django.db import connection

    from voicebots.knowledge.models import Chunk

    started = time.perf_counter()
    with connection.schema_editor() as editor:
        editor.add_index(Chunk, migrated_vector_index())
    return time.perf_counter() - started


@contextmanager
def server_notices():
    """Collect the server's NOTICE messages, such as pgvector's on a build that outgrows memory."""
    from django.db import connection

    connection.ensure_connection()
    notices: list[str] = []

    def collect(diagnostic):
        notices.append(diagnostic.message_primary)

    connection.connection.add_notice_handler(collect)
    try:
        yield notices
    finally:
        connection.connection.remove_notice_handler(collect)


def vector_text(vectors: np.ndarray) -> list[str]:
    """pgvector's text form, `[x,y,...]`, of each row."""
    row_format = "[" + ",".join(["%.6f"] * vectors.shape[1]) + "]"
    return [row_format % tuple(row) for row in vectors.tolist()]


def noisy_copies(vectors: np.ndarray, sources: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    copies = vectors[sources] + rng.normal(0.0, FILLER_NOISE, (len(sources), vectors.shape[1])).astype(np.float32)
    return copies / np.linalg.norm(copies, axis=1, keepdims=True)


@dataclass
class Corpus:
    """The chunks in scope of the benchmark's bot, and what is needed to add more."""
    account: object
    documents: list
    passages: list[Passage]  # base passages, then labelled targets
    vectors: np.ndarray
    token_counts: list[int]
    base_count: int
    size: int = 0

    @property
    def document_ids(self) -> list[str]:
        return [str(document.id) for document in self.documents]

    @property
    def targets(self) -> list[Passage]:
        return self.passages[self.base_count:]


def chunk_rows(corpus: Corpus, texts: list[str], sources: list[int], vectors: np.ndarray, model: str):
    """COPY rows for chunks numbered from `corpus.size` on, spread over the corpus documents."""
    documents = corpus.document_ids
    for offset, (text, source, vector) in enumerate(zip(texts, sources, vector_text(vectors))):
        number = corpus.size + offset
        heading = json.dumps(list(corpus.passages[source].heading_path))
        yield (corpus.account.id, documents[number % len(documents)], 1, True, number // len(documents), text,
               heading, None, corpus.token_counts[source], vector, model)


COPY_SQL = ("COPY knowledge_chunk (account_id, document_id, version, live, index, text, heading_path, page, "
            "token_count, embedding, embedding_model) FROM STDIN")


def copy_rows(rows: list[tuple]) -> float:
    """Insert `rows` with one COPY; returns the seconds it took."""
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor, cursor.copy(COPY_SQL) as copy:
        for row in rows:
            copy.write_row(row)
    return time.perf_counter() - started


SERVER_SETTINGS = ("server_version", "shared_buffers", "effective_cache_size", "maintenance_work_mem", "jit")


def server_setting(name: str) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting(%s)", [name])
        return cursor.fetchone()[0]


def analyze_chunks() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE knowledge_chunk")


# --- 1. Ingestion ------------------------------------------------------------------------

def bench_ingestion(scale: Scale, generator: TextGenerator) -> dict:
    from django.test import override_settings

    from voicebots.knowledge import filetypes

    account = create_bench_account("ingestion")
    markdown = [(f"handbook-{n + 1}.md", filetypes.MARKDOWN, markdown_document(generator, scale.sections_per_file))
                for n in range(scale.markdown_files)]
    pdf_bytes, pages = pdf_document(generator, scale.pdf_pages)
    # Uploaded files go to a throw-away MEDIA_ROOT; override_settings also resets the storage.
    with tempfile.TemporaryDirectory(prefix="bench-knowledge-media-") as media, override_settings(MEDIA_ROOT=media):
        markdown_run = ingest(account, markdown)
        pdf_run = ingest(account, [("catalogue.pdf", filetypes.PDF, pdf_bytes)])
    pdf_run["pages"] = pages
    pdf_run["pages_per_s"] = pages / pdf_run["seconds"]
    embedding = embedding_only(markdown_run["documents"] + pdf_run["documents"])
    embedding["share_of_process"] = embedding["seconds"] / (markdown_run["seconds"] + pdf_run["seconds"])
    for run in (markdown_run, pdf_run):
        del run["documents"]
    return {"markdown": markdown_run, "pdf": pdf_run, "embedding_only": embedding}


def ingest(account, files: list[tuple[str, str, bytes]]) -> dict:
    """Store the files and time `process()` on each; fails loudly if one does not become ready."""
    from voicebots.knowledge.models import Knowledgebase
    from voicebots.knowledge.processing import process

    documents = [stored_document(account, name, content_type, data) for name, content_type, data in files]
    started = time.perf_counter()
    for document in documents:
        process(str(document.id), document.version)
    seconds = time.perf_counter() - started
    documents = list(Knowledgebase.objects.filter(pk__in=[d.pk for d in documents]))
    failed = [f"{d.name}: {d.error}" for d in documents if d.status != Knowledgebase.Status.READY]
    if failed:
        raise RuntimeError(f"process() did not make the documents ready: {failed}")
    chunks = sum(document.chunk_count for document in documents)
    return {"files": len(files), "bytes": sum(len(data) for *_, data in files), "chunks": chunks,
            "seconds": seconds, "chunks_per_s": chunks / seconds, "documents": documents}


def embedding_only(documents) -> dict:
    """Re-embed the stored chunks' texts alone, in the pipeline's batches, to see its share of the time."""
    from voicebots.knowledge.chunking import Chunk as PipelineChunk
    from voicebots.knowledge.chunking import chunk_text_for_embedding
    from voicebots.knowledge.embeddings import get_embedder
    from voicebots.knowledge.models import Chunk

    stored = Chunk.objects.filter(document__in=documents, live=True).order_by("document", "index")
    texts = [chunk_text_for_embedding(PipelineChunk(c.text, tuple(c.heading_path), c.page, c.index, c.token_count))
             for c in stored]
    embedder = get_embedder()
    started = time.perf_counter()
    for start in range(0, len(texts), EMBED_BATCH):
        embedder.embed(texts[start:start + EMBED_BATCH])
    seconds = time.perf_counter() - started
    tokens = [c.token_count for c in stored]
    return {"chunks": len(texts), "seconds": seconds, "chunks_per_s": len(texts) / seconds,
            "mean_tokens": float(np.mean(tokens)), "max_tokens": int(np.max(tokens))}


# --- 2 and 3. Retrieval corpus, latency and recall ------------------------------------------

def build_corpus(scale: Scale, generator: TextGenerator) -> tuple[Corpus, dict]:
    """Embed the base passages and labelled targets for real and create the bot's documents."""
    from voicebots.knowledge.embeddings import get_embedder

    embedder = get_embedder()
    passages = generator.passages(scale.base_passages) + generator.targets(scale.targets)
    started = time.perf_counter()
    vectors = embedder.embed([passage.for_embedding() for passage in passages])
    seconds = time.perf_counter() - started
    account = create_bench_account("retrieval")
    corpus = Corpus(account, corpus_documents(account, CORPUS_DOCUMENTS), passages, vectors,
                    [embedder.count_tokens(passage.text) for passage in passages], scale.base_passages)
    return corpus, {"passages": len(passages), "seconds": seconds, "chunks_per_s": len(passages) / seconds,
                    "mean_tokens": float(np.mean(corpus.token_counts))}


def load_real_passages(corpus: Corpus, model: str) -> None:
    sources = list(range(len(corpus.passages)))
    rows = list(chunk_rows(corpus, [p.text for p in corpus.passages], sources, corpus.vectors, model))
    copy_rows(rows)
    corpus.size += len(rows)


def filler_rows(corpus: Corpus, count: int, generator: TextGenerator, rng: np.random.Generator, model: str):
    sources = np.arange(corpus.size, corpus.size + count) % corpus.base_count
    vectors = noisy_copies(corpus.vectors, sources, rng)
    texts = [generator.shuffled(corpus.passages[source].text) for source in sources]
    return list(chunk_rows(corpus, texts, sources.tolist(), vectors, model))


def grow_corpus(corpus: Corpus, size: int, generator: TextGenerator, rng: np.random.Generator, *,
                rebuild_index: bool) -> dict:
    """Add filler chunks up to `size`, with the HNSW index in place or rebuilt after the load."""
    from voicebots.knowledge.embeddings import get_embedder

    rows = filler_rows(corpus, size - corpus.size, generator, rng, get_embedder().name)
    if rebuild_index:
        drop_vector_index()
    copy_seconds = copy_rows(rows)
    with server_notices() as notices:
        index_seconds = create_vector_index() if rebuild_index else None
    analyze_chunks()
    corpus.size = size
    return {"rows": len(rows), "copy_seconds": copy_seconds, "rows_per_s": len(rows) / copy_seconds,
            "index_rebuilt": rebuild_index, "index_seconds": index_seconds, "index_notices": notices,
            "maintenance_work_mem": server_setting("maintenance_work_mem")}


def filler_similarity(corpus: Corpus, rng: np.random.Generator) -> dict:
    """How close filler lies to its source and to its siblings, next to real passages' neighbours."""
    sources = rng.integers(0, corpus.base_count, 1000)
    copies, siblings = noisy_copies(corpus.vectors, sources, rng), noisy_copies(corpus.vectors, sources, rng)
    real = corpus.vectors @ corpus.vectors.T
    np.fill_diagonal(real, -1.0)
    return {"to_source": float(np.mean(np.sum(copies * corpus.vectors[sources], axis=1))),
            "between": float(np.mean(np.sum(copies * siblings, axis=1))),
            "real_10th": float(np.mean(np.sort(real, axis=1)[:, -10]))}


def timed_searches(corpus: Corpus, queries: list[str]) -> list[tuple[float, object]]:
    from voicebots.knowledge.embeddings import clear_query_cache
    from voicebots.knowledge.retrieval import search

    results = []
    for query in queries:
        # Random questions repeat now and then: each is embedded anew, as the target counts the embedding.
        clear_query_cache()
        started = time.perf_counter()
        result = search(corpus.account.id, query, corpus.document_ids, top_k=TOP_K)
        results.append(((time.perf_counter() - started) * 1000, result))
    return results


def percentiles(values) -> dict:
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "mean": float(np.mean(values))}


def bench_retrieval(corpus: Corpus, scale: Scale, generator: TextGenerator) -> dict:
    """Latency of `search()` over random and labelled questions, and recall of the labelled ones."""
    asked = [(passage.question, passage.text) for passage in corpus.targets]
    asked += [(generator.random_question(), None) for _ in range(scale.queries - len(asked))]
    generator.rng.shuffle(asked)
    timed_searches(corpus, [generator.random_question() for _ in range(scale.warmup)])
    load_before = os.getloadavg()[0]
    timed = timed_searches(corpus, [question for question, _ in asked])
    load = (load_before, os.getloadavg()[0])
    ranks = [target_rank(result, answer) for (_, answer), (_, result) in zip(asked, timed) if answer]
    return {
        "queries": len(asked), "warmup": scale.warmup, "load_average": load,
        "total_ms": percentiles([ms for ms, _ in timed]),
        "embed_ms": percentiles([result.timings_ms["embed_ms"] for _, result in timed]),
        "sql_ms": percentiles([result.timings_ms["query_ms"] for _, result in timed]),
        "labelled": len(ranks),
        "recall_at_5": sum(rank is not None for rank in ranks) / len(ranks),
        "mrr_at_5": sum(1 / rank for rank in ranks if rank) / len(ranks),
        "vector_recall_at_5": vector_recalls(corpus),
    }


def target_rank(result, target_text: str) -> int | None:
    return next((rank for rank, hit in enumerate(result.hits, 1) if hit.text == target_text), None)


# The vector half of retrieval._SQL, alone, to tell the index's losses from the model's.
VECTOR_SQL = """
SELECT c.text FROM knowledge_chunk c
WHERE c.account_id = %(account)s AND c.document_id = ANY(%(documents)s::uuid[]) AND c.live
ORDER BY c.embedding <=> %(embedding)s::vector LIMIT %(top_k)s
"""
EF_SEARCH_VALUES = (40, 100, 200)  # 40 is pgvector's default


def vector_recalls(corpus: Corpus) -> dict:
    """Vector-only recall@5 of the labelled questions: exact (no index) and through HNSW."""
    from voicebots.knowledge.embeddings import get_embedder
    from voicebots.knowledge.retrieval import _vector_literal

    targets = corpus.targets
    vectors = get_embedder().embed([passage.question for passage in targets])
    queries = [(passage.text, _vector_literal(vector)) for passage, vector in zip(targets, vectors)]
    recalls = {"exact": vector_recall(corpus, queries, ["SET LOCAL enable_indexscan = off"])}
    for ef_search in EF_SEARCH_VALUES:
        recalls[f"hnsw_ef{ef_search}"] = vector_recall(corpus, queries, [
            "SET LOCAL hnsw.iterative_scan = relaxed_order", f"SET LOCAL hnsw.ef_search = {ef_search}"])
    return recalls


def vector_recall(corpus: Corpus, queries: list[tuple[str, str]], settings: list[str]) -> dict:
    """Recall@5 of the vector query under `settings`, and its mean time in ms."""
    from django.db import connection, transaction

    found, seconds = 0, 0.0
    for answer, embedding in queries:
        with transaction.atomic(), connection.cursor() as cursor:
            for setting in settings:
                cursor.execute(setting)
            started = time.perf_counter()
            cursor.execute(VECTOR_SQL, {"account": str(corpus.account.id), "documents": corpus.document_ids,
                                        "embedding": embedding, "top_k": TOP_K})
            found += answer in [text for (text,) in cursor.fetchall()]
            seconds += time.perf_counter() - started
    return {"recall": found / len(queries), "mean_ms": seconds * 1000 / len(queries)}


def explain_search(corpus: Corpus, question: str) -> dict:
    """EXPLAIN (ANALYZE, BUFFERS) of search()'s exact SQL, split into its vector and text parts."""
    from django.db import connection, transaction

    from voicebots.knowledge import retrieval
    from voicebots.knowledge.embeddings import get_embedder

    # The product's own SQL, settings and parameters, so the plan is the one search() gets.
    params = retrieval.search_params(corpus.account.id, question, get_embedder().embed([question])[0],
                                     corpus.document_ids, TOP_K)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(retrieval._SCAN_SETTINGS, params)
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + retrieval._SQL, params)
        plan = [line for (line,) in cursor.fetchall()]
    vector_part = plan_subtree(plan, "on nearest")
    return {"question": question, "vector_plan": vector_part, "text_plan": plan_subtree(plan, "on matching"),
            "hnsw_used": any(VECTOR_INDEX in line for line in vector_part),
            "execution": [line for line in plan if line.startswith(("Planning Time", "Execution Time"))]}


def plan_subtree(plan: list[str], marker: str) -> list[str]:
    """The plan node whose line contains `marker`, with the nodes under it (deeper indentation)."""
    start = next((i for i, line in enumerate(plan) if marker in line), None)
    if start is None:
        return plan
    depth = len(plan[start]) - len(plan[start].lstrip())
    subtree = [plan[start]]
    for line in plan[start + 1:]:
        if len(line) - len(line.lstrip()) <= depth:
            break
        subtree.append(line)
    return subtree


# --- Running and reporting ---------------------------------------------------------------

def run(scale: Scale) -> dict:
    from voicebots.knowledge.embeddings import get_embedder

    started = time.perf_counter()
    delete_previous_runs()
    embedder = get_embedder()
    results = {"scale": "quick" if scale is QUICK else "full", "embedder": embedder.name, "cpus": os.cpu_count(),
               "database": BENCH_DATABASE, "cleanup_seconds": time.perf_counter() - started,
               "server_settings": {name: server_setting(name) for name in SERVER_SETTINGS}}
    # Documents come from their own generator, so the corpus is the same whatever their size.
    document_generator = TextGenerator(SEED + 1)
    # A worker's first batches pay onnxruntime's one-off allocations; a long-lived worker does not.
    embedder.embed([passage.for_embedding() for passage in document_generator.passages(EMBED_BATCH)])
    results["ingestion"] = bench_ingestion(scale, document_generator)
    generator = TextGenerator(SEED)
    rng = np.random.default_rng(SEED)
    corpus, results["corpus_embedding"] = build_corpus(scale, generator)
    results["corpus_embedding"]["filler"] = filler_similarity(corpus, rng)
    load_real_passages(corpus, embedder.name)
    results["retrieval"] = {}
    for size in scale.corpus_sizes:
        # Into the indexed table HNSW inserts ran at ~600 rows/s at 100k (2.5 min for 90k rows);
        # a COPY without the index and a build after take about half as long.
        load = grow_corpus(corpus, size, generator, rng, rebuild_index=size > 10_000)
        results["retrieval"][str(size)] = {"load": load, **bench_retrieval(corpus, scale, generator)}
    results["explain"] = explain_search(corpus, corpus.targets[0].question)
    results["targets"] = target_checks(results)
    return results


def target_checks(results: dict) -> list[dict]:
    sizes = results["retrieval"]
    largest = max(sizes, key=int)
    p95_at_100k = sizes["100000"]["total_ms"]["p95"] if "100000" in sizes else None
    return [
        {"target": "retrieval p95 at 100k chunks <= 25 ms", "value": p95_at_100k, "unit": "ms",
         "passed": None if p95_at_100k is None else p95_at_100k <= TARGET_P95_MS},
        {"target": f"recall@5 >= 0.9 (at {int(largest):,} chunks)", "value": sizes[largest]["recall_at_5"],
         "unit": "", "passed": sizes[largest]["recall_at_5"] >= TARGET_RECALL},
        {"target": "embedding >= 150 chunks/s (embed only, batch 64)",
         "value": results["ingestion"]["embedding_only"]["chunks_per_s"], "unit": "chunks/s",
         "passed": results["ingestion"]["embedding_only"]["chunks_per_s"] >= TARGET_EMBED_RATE},
    ]


def report(results: dict) -> str:
    return "\n".join(
        [f"Knowledge benchmark ({results['scale']}): database {results['database']}, embedder {results['embedder']}, "
         f"{results['cpus']} CPUs",
         "Server: " + ", ".join(f"{name} {value}" for name, value in results["server_settings"].items()), ""]
        + ingestion_lines(results["ingestion"]) + [""]
        + corpus_lines(results) + [""]
        + latency_lines(results["retrieval"]) + [""]
        + recall_lines(results["retrieval"]) + [""]
        + explain_lines(results["explain"]) + [""]
        + target_lines(results["targets"])
    )


def ingestion_lines(ingestion: dict) -> list[str]:
    markdown, pdf, embedding = ingestion["markdown"], ingestion["pdf"], ingestion["embedding_only"]
    return [
        "1. Ingestion through processing.process() (extract, chunk to <= 200 tokens, embed, store)",
        f"   {'documents':<20}{'chunks':>8}{'pages':>7}{'seconds':>9}{'chunks/s':>10}{'pages/s':>9}",
        f"   {'Markdown x' + str(markdown['files']):<20}{markdown['chunks']:>8}{'-':>7}{markdown['seconds']:>9.1f}"
        f"{markdown['chunks_per_s']:>10.1f}{'-':>9}",
        f"   {'PDF':<20}{pdf['chunks']:>8}{pdf['pages']:>7}{pdf['seconds']:>9.1f}{pdf['chunks_per_s']:>10.1f}"
        f"{pdf['pages_per_s']:>9.1f}",
        f"   Embedding alone, same {embedding['chunks']} chunk texts (mean {embedding['mean_tokens']:.0f} tokens, "
        f"batch {EMBED_BATCH}): {embedding['seconds']:.1f} s = {embedding['chunks_per_s']:.1f} chunks/s, "
        f"{embedding['share_of_process']:.0%} of process() time",
    ]


def corpus_lines(results: dict) -> list[str]:
    embedding = results["corpus_embedding"]
    lines = [
        f"2. Retrieval corpus: {embedding['passages']:,} passages embedded for real (mean {embedding['mean_tokens']:.0f} "
        f"tokens) in {embedding['seconds']:.1f} s = {embedding['chunks_per_s']:.1f} chunks/s; "
        f"{CORPUS_DOCUMENTS} documents in the bot's scope",
        *("   " + line for line in FILLER_NOTE.format(real=embedding["passages"], noise=FILLER_NOISE,
                                                     **embedding["filler"]).splitlines()),
    ]
    for size, measured in results["retrieval"].items():
        load = measured["load"]
        how = (f"HNSW index dropped, then rebuilt in {load['index_seconds']:.1f} s "
               f"(maintenance_work_mem {load['maintenance_work_mem']})" if load["index_rebuilt"]
               else "into the indexed table")
        lines.append(f"   to {int(size):,} chunks: COPY of {load['rows']:,} filler rows in {load['copy_seconds']:.1f} s "
                     f"({load['rows_per_s']:,.0f} rows/s), {how}")
        lines += [f"     server notice: {notice}" for notice in load["index_notices"]]
    return lines


def latency_lines(retrieval: dict) -> list[str]:
    first = next(iter(retrieval.values()))
    lines = [
        f"   search() end to end (ms), {first['queries']} queries ({first['labelled']} labelled, the rest random) "
        f"after {first['warmup']} warm-up, top_k={TOP_K}; embed and SQL from its timings_ms",
        f"   {'chunks':>9}{'p50':>8}{'p95':>8}{'p99':>8}{'mean':>8}  {'embed p50/p95':>15}  {'SQL p50/p95':>15}"
        f"  {'load avg':>11}",
    ]
    for size, m in retrieval.items():
        total, embed, sql, load = m["total_ms"], m["embed_ms"], m["sql_ms"], m["load_average"]
        lines.append(
            f"   {int(size):>9,}{total['p50']:>8.1f}{total['p95']:>8.1f}{total['p99']:>8.1f}{total['mean']:>8.1f}"
            f"  {embed['p50']:>7.1f} /{embed['p95']:>6.1f}  {sql['p50']:>7.1f} /{sql['p95']:>6.1f}"
            f"  {load[0]:>4.1f} -{load[1]:>4.1f}"
        )
    return lines + ["   Every query is embedded anew (the query-embedding cache is emptied before each). load avg: the",
                    "   machine's 1-minute load average before and after the timed queries."]


def recall_lines(retrieval: dict) -> list[str]:
    from voicebots.knowledge.retrieval import VECTOR_POOL

    first = next(iter(retrieval.values()))
    columns = list(first["vector_recall_at_5"])
    labels = [column.replace("hnsw_ef", "ef=") for column in columns]
    lines = [
        f"3. Recall of {first['labelled']} labelled questions, each answered by the one passage stating its fact",
        f"   {'':>9}{'search()':>18}   vector part alone: recall@5 (mean ms)",
        f"   {'chunks':>9}{'recall@5':>10}{'MRR@5':>8}   " + "".join(f"{label:>14}" for label in labels),
    ]
    for size, m in retrieval.items():
        vector = m["vector_recall_at_5"]
        lines.append(f"   {int(size):>9,}{m['recall_at_5']:>10.2f}{m['mrr_at_5']:>8.2f}   " + "".join(
            f"{vector[column]['recall']:>7.2f} ({vector[column]['mean_ms']:>4.1f})" for column in columns))
    return lines + [
        "   'exact': the vector query with index scans off, what a perfect index returns; 'ef=N': through",
        f"   HNSW with hnsw.ef_search = N (40 is pgvector's default; search() uses {VECTOR_POOL}).",
    ]


PLAN_WIDTH = 150  # plan lines carry the whole query vector: cut them


def explain_lines(explain: dict) -> list[str]:
    return [
        f"EXPLAIN (ANALYZE, BUFFERS) of search()'s SQL at the largest size, for {explain['question']!r}",
        f"   HNSW index used by the vector part: {'yes' if explain['hnsw_used'] else 'NO'}",
        "   vector part:", *plan_lines(explain["vector_plan"][:10]),
        "   text part:", *plan_lines(explain["text_plan"][:8]),
        *("   " + line for line in explain["execution"]),
    ]


def plan_lines(plan: list[str]) -> list[str]:
    indent = len(plan[0]) - len(plan[0].lstrip())
    return ["     " + (line[indent:] if len(line) - indent <= PLAN_WIDTH else line[indent:indent + PLAN_WIDTH] + "...")
            for line in plan]


def target_lines(targets: list[dict]) -> list[str]:
    lines = ["Targets (from the issue)"]
    for check in targets:
        if check["value"] is None:
            value, verdict = "not measured", "SKIPPED (100k runs only without --quick)"
        else:
            value, verdict = f"{check['value']:.2f} {check['unit']}".strip(), "PASS" if check["passed"] else "MISS"
        lines.append(f"   {check['target']:<52}{value:>18}  {verdict}")
    return lines


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.knowledge", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small documents and the 10k corpus only (~1 minute)")
    args, _ = parser.parse_known_args(argv)  # leaves `python -m bench`'s own flags to it
    use_bench_database()
    started = time.perf_counter()
    results = run(QUICK if args.quick else FULL)
    results["seconds"] = time.perf_counter() - started
    print(report(results))
    print(f"\n(total {results['seconds']:.0f} s)")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
