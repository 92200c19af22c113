from django.db.models.signals import post_delete
from django.dispatch import receiver

from . import services
from .models import Recording


@receiver(post_delete, sender=Recording)
def _audio_goes_with_its_record(sender, instance: Recording, **kwargs):
    services.on_deleted(instance)
