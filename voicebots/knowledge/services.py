from django.db import transaction

from .models import Knowledgebase
from .tasks import process_document


def schedule_processing(document: Knowledgebase) -> None:
    """Queue processing of the document's current version once the upload is committed."""
    transaction.on_commit(lambda: process_document.delay(str(document.id), document.version))
