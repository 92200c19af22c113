from celery import shared_task


@shared_task(name="knowledge.process_document", acks_late=True, reject_on_worker_lost=True)
def process_document(document_id: str, version: int) -> None:
    from .processing import process

    process(document_id, version)


@shared_task(name="knowledge.requeue_stale_documents")
def requeue_stale_documents() -> int:
    """Queue again the documents a dead worker left in `processing` (run by beat every minute)."""
    from .processing import stale_documents

    count = 0
    for document in stale_documents():
        process_document.delay(str(document.id), document.version)
        count += 1
    return count
