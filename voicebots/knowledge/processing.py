"""Turns an uploaded document into searchable chunks. Filled in by the knowledge pipeline."""


def process(document_id: str, version: int) -> None:
    return None
