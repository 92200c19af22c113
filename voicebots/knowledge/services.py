import logging

from django.db import transaction

from .models import Knowledgebase
from .tasks import process_document

logger = logging.getLogger(__name__)


def schedule_processing(document: Knowledgebase) -> None:
    """Queue processing of the document's current version once the upload is committed.

    If the queue cannot be reached the upload still stands: the document stays `processing`
    and the periodic sweep for stale documents queues it again.
    """
    document_id, version = str(document.id), document.version

    def enqueue():
        try:
            process_document.delay(document_id, version)
        except Exception:
            logger.exception("Could not queue processing of document %s; the sweep will retry", document_id)

    transaction.on_commit(enqueue)
