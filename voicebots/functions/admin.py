from django.contrib import admin

from voicebots.accounts.admin_scoping import AccountScopedAdmin

from .models import Function


@admin.register(Function)
class FunctionAdmin(AccountScopedAdmin):
    list_display = ["name", "handler_url", "timeout_seconds", "created_at"]
    search_fields = ["name", "description", "handler_url"]
    list_filter = ["created_at"]
    readonly_fields = ["id", "created_at", "updated_at"]
