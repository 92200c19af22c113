from django import forms
from django.contrib import admin
from django.db import transaction

from voicebots.accounts.admin_scoping import AccountScopedAdmin

from . import filetypes
from .models import Knowledgebase
from .services import schedule_processing
from .uploads import fingerprint


class DocumentUploadForm(forms.ModelForm):
    class Meta:
        model = Knowledgebase
        fields = ["account", "file"]

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size == 0:
            raise forms.ValidationError("The file is empty.")
        head, self.checksum = fingerprint(upload)
        try:
            self.content_type = filetypes.sniff(upload.name, head)
        except filetypes.UnsupportedDocument as exc:
            raise forms.ValidationError(str(exc))
        return upload


@admin.register(Knowledgebase)
class KnowledgebaseAdmin(AccountScopedAdmin):
    list_display = ["name", "status", "progress", "chunk_count", "size", "content_type", "created_at"]
    list_filter = ["status", "content_type"]
    search_fields = ["name", "checksum", "error"]
    readonly_fields = ["id", "name", "status", "error", "progress", "chunk_count", "size", "content_type",
                       "checksum", "version", "processed_at", "created_at", "updated_at"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = DocumentUploadForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["account", "file"] if request.user.is_superuser else ["file"]
        return super().get_fields(request, obj)

    @admin.display(description="Progress")
    def progress(self, obj):
        if obj.status != Knowledgebase.Status.PROCESSING or not obj.chunks_total:
            return obj.get_status_display()
        return f"{obj.chunks_done} / {obj.chunks_total} chunks"

    def save_model(self, request, obj, form, change):
        if not change:
            obj.name = form.cleaned_data["file"].name[:255]
            obj.size = form.cleaned_data["file"].size
            obj.checksum, obj.content_type = form.checksum, form.content_type
        super().save_model(request, obj, form, change)
        if not change:
            schedule_processing(obj)
