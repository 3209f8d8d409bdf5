from __future__ import annotations

from chat import views
from django.urls import path

urlpatterns = [
    path("", views.index, name="index"),
    path("new", views.new_conversation, name="new"),
    path("send", views.send, name="send"),
    path("wsgi-probe", views.wsgi_probe, name="wsgi-probe"),
]
