"""Admin pages scoped to the signed-in user's account; superusers see every account, and which one owns what."""
from django.contrib import admin

from .services import account_of_user


def _owner(obj, path: str):
    for attribute in path.split("__"):
        obj = getattr(obj, attribute, None)
    return obj


class AccountScopedAdmin(admin.ModelAdmin):
    account_field = "account"

    def _account(self, request):
        """The member's account, looked up once per request: a page asks for it in every model's permission
        checks (88 of the admin index's 93 queries were this lookup)."""
        user_id, account = getattr(request, "_scoped_account", (None, None))
        if user_id != request.user.pk:
            account = account_of_user(request.user)
            request._scoped_account = (request.user.pk, account)
        return account

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset.select_related(self.account_field) if self.account_field != "pk" else queryset
        account = self._account(request)
        return queryset.filter(**{self.account_field: account}) if account else queryset.none()

    def get_list_display(self, request):
        columns = list(super().get_list_display(request))
        if request.user.is_superuser and self.account_field != "pk":
            columns.insert(1, "owner_account")
        return columns

    @admin.display(description="Account")
    def owner_account(self, obj):
        return _owner(obj, self.account_field)

    def get_exclude(self, request, obj=None):
        exclude = list(super().get_exclude(request, obj) or [])
        if not request.user.is_superuser:
            exclude.append(self.account_field)
        return exclude

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        # Forms validated by the API (api.admin_forms) check related objects against this account.
        owner = None if request.user.is_superuser else self._account(request)
        return type(form.__name__, (form,), {"owner_account": owner})

    def save_model(self, request, obj, form, change):
        if not request.user.is_superuser:
            setattr(obj, self.account_field, self._account(request))
        super().save_model(request, obj, form, change)

    def _scope_choices(self, request, db_field, kwargs) -> None:
        """Members choose among their account's objects; superusers see each choice's account."""
        related = db_field.related_model
        if not hasattr(related, "account"):
            return
        if request.user.is_superuser:
            kwargs.setdefault("queryset", related.objects.select_related("account"))
        else:
            kwargs["queryset"] = related.objects.filter(account=self._account(request))

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        self._scope_choices(request, db_field, kwargs)
        return self._labelled(request, super().formfield_for_foreignkey(db_field, request, **kwargs))

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        self._scope_choices(request, db_field, kwargs)
        return self._labelled(request, super().formfield_for_manytomany(db_field, request, **kwargs))

    @staticmethod
    def _labelled(request, formfield):
        model = getattr(getattr(formfield, "queryset", None), "model", None)
        if formfield is not None and request.user.is_superuser and model is not None and hasattr(model, "account"):
            formfield.label_from_instance = lambda obj: f"{obj} ({obj.account})"
        return formfield

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
