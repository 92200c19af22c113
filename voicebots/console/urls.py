from django.urls import path

from . import views

app_name = "console"
urlpatterns = [
    path("", views.index, name="index"),
    path("<str:auth_id>/", views.overview, name="overview"),
    path("<str:auth_id>/calls/", views.call_list, name="calls"),
    path("<str:auth_id>/calls/<str:call_id>/", views.call_detail, name="call"),
    path("<str:auth_id>/calls/<str:call_id>/audio", views.call_audio, name="call-audio"),
    path("<str:auth_id>/calls/<str:call_id>/peaks", views.call_peaks, name="call-peaks"),
]
