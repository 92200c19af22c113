from django import forms
from django.contrib import admin
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from voicebots.accounts.admin_scoping import AccountScopedAdmin
from voicebots.accounts.services import account_of_user

from . import filetypes
from .models import Chunk, Knowledgebase
from .retrieval import search
from .services import schedule_processing
from .uploads import fingerprint, safe_file_name

PREVIEW_CHUNKS = 20


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


class RetrievalForm(forms.Form):
    query = forms.CharField(max_length=2000, widget=forms.TextInput(attrs={"size": 80}))
    top_k = forms.IntegerField(min_value=1, max_value=20, initial=5)


@admin.register(Knowledgebase)
class KnowledgebaseAdmin(AccountScopedAdmin):
    list_display = ["name", "status", "progress", "chunk_count", "size", "content_type", "created_at"]
    list_filter = ["status", "content_type"]
    search_fields = ["name", "checksum", "error"]
    readonly_fields = ["id", "name", "status", "error", "progress", "chunk_count", "size", "content_type",
                       "checksum", "version", "processed_at", "created_at", "updated_at", "chunks_preview"]
    change_list_template = "admin/knowledge/knowledgebase/change_list.html"

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = DocumentUploadForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["account", "file"] if request.user.is_superuser else ["file"]
        return self.readonly_fields

    def get_urls(self):
        return [path("search/", self.admin_site.admin_view(self.retrieval_view), name="knowledge_search"),
                *super().get_urls()]

    @admin.display(description="Progress")
    def progress(self, obj):
        if obj.status != Knowledgebase.Status.PROCESSING or not obj.chunks_total:
            return obj.get_status_display()
        return format_html('<progress value="{}" max="{}"></progress> {} / {} chunks',
                           obj.chunks_done, obj.chunks_total, obj.chunks_done, obj.chunks_total)

    @admin.display(description="Chunks")
    def chunks_preview(self, obj):
        chunks = obj.chunks.filter(live=True).order_by("index")[:PREVIEW_CHUNKS]
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((c.index, c.page or "", " > ".join(c.heading_path), c.text[:300]) for c in chunks),
        )
        link = reverse("admin:knowledge_chunk_changelist") + f"?document__id__exact={obj.pk}"
        return format_html('<table><tr><th>#</th><th>Page</th><th>Heading</th><th>Text</th></tr>{}</table>'
                           '<p><a href="{}">All {} chunks</a></p>', rows, link, obj.chunk_count)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.name = safe_file_name(form.cleaned_data["file"].name)
            obj.size = form.cleaned_data["file"].size
            obj.checksum, obj.content_type = form.checksum, form.content_type
        super().save_model(request, obj, form, change)
        if not change:
            schedule_processing(obj)

    def retrieval_view(self, request):
        """Try retrieval: what the bots of the user's account would find for a question."""
        form = RetrievalForm(request.GET or None)
        account = account_of_user(request.user)
        documents = Knowledgebase.objects.filter(account=account, status=Knowledgebase.Status.READY)
        result = None
        if form.is_valid() and account is not None:
            result = search(account.pk, form.cleaned_data["query"], list(documents.values_list("id", flat=True)),
                            top_k=form.cleaned_data["top_k"])
        context = {**self.admin_site.each_context(request), "title": "Try retrieval", "form": form,
                   "result": result, "opts": self.model._meta, "account": account,
                   "document_count": documents.count()}
        return TemplateResponse(request, "admin/knowledge/retrieval.html", context)


@admin.register(Chunk)
class ChunkAdmin(AccountScopedAdmin):
    list_display = ["document", "index", "page", "token_count", "live", "excerpt"]
    list_filter = ["live", "document"]
    search_fields = ["text"]
    list_select_related = ["document"]
    readonly_fields = ["document", "version", "live", "index", "page", "heading_path", "token_count",
                       "embedding_model", "text"]
    fields = readonly_fields

    @admin.display(description="Text")
    def excerpt(self, obj):
        return obj.text[:120]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
