from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from voicebots.calls.live_views import live_command
from voicebots.telephony.transfer import transfer_announcement, transfer_result, transfer_xml

urlpatterns = [
    path("admin/", admin.site.urls),
    # The OpenAPI document and its browsable docs, with or without the trailing slash.
    re_path(r"^api/schema/?$", SpectacularAPIView.as_view(permission_classes=[], authentication_classes=[]),
            name="schema"),
    re_path(r"^api/docs/?$", SpectacularSwaggerView.as_view(url_name="schema", permission_classes=[]),
            name="api-docs"),
    re_path(r"^api/redoc/?$", SpectacularRedocView.as_view(url_name="schema", permission_classes=[]),
            name="api-redoc"),
    path("console/", include("voicebots.console.urls")),
    path("favicon.ico", RedirectView.as_view(url=static("console/favicon.svg"), permanent=True)),
    path("calls/<uuid:call_id>/live/<slug:command>/", live_command, name="call-live-command"),
    path("plivo/transfer/<uuid:call_id>/", transfer_xml, name="plivo-transfer"),
    path("plivo/transfer/<uuid:call_id>/announcement/", transfer_announcement, name="plivo-transfer-announcement"),
    path("plivo/transfer/<uuid:call_id>/result/", transfer_result, name="plivo-transfer-result"),
    path("", include("voicebots.web.urls")),
    path("", include("voicebots.api.urls")),
]
