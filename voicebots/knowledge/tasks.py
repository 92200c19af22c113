from celery import shared_task


@shared_task(name="knowledge.process_document", acks_late=True)
def process_document(document_id: str, version: int) -> None:
    from .processing import process

    process(document_id, version)
