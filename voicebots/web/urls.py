from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("playground/<uuid:bot_id>/", views.playground, name="playground"),
]
