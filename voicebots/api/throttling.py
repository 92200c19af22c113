from rest_framework.throttling import SimpleRateThrottle


class AccountRateThrottle(SimpleRateThrottle):
    """Requests per account (or per client address before authentication)."""

    scope = "account"

    def get_cache_key(self, request, view):
        account = getattr(request, "account", None)
        ident = account.pk if account is not None else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}
