"""Admin pages scoped to the signed-in user's account; superusers see every account."""
from django.contrib import admin

from .services import account_of_user


class AccountScopedAdmin(admin.ModelAdmin):
    account_field = "account"

    def _account(self, request):
        return account_of_user(request.user)

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        account = self._account(request)
        return queryset.filter(**{self.account_field: account}) if account else queryset.none()

    def get_exclude(self, request, obj=None):
        exclude = list(super().get_exclude(request, obj) or [])
        if not request.user.is_superuser:
            exclude.append(self.account_field)
        return exclude

    def save_model(self, request, obj, form, change):
        if not request.user.is_superuser:
            setattr(obj, self.account_field, self._account(request))
        super().save_model(request, obj, form, change)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        related = db_field.related_model
        if not request.user.is_superuser and hasattr(related, "account"):
            kwargs["queryset"] = related.objects.filter(account=self._account(request))
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    # Members of an account manage its data without per-model permission setup.
    def _member(self, request) -> bool:
        return request.user.is_superuser or (request.user.is_staff and self._account(request) is not None)

    def has_module_permission(self, request):
        return self._member(request)

    def has_view_permission(self, request, obj=None):
        return self._member(request)

    def has_add_permission(self, request):
        return self._member(request)

    def has_change_permission(self, request, obj=None):
        return self._member(request)

    def has_delete_permission(self, request, obj=None):
        return self._member(request)
