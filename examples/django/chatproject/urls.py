from __future__ import annotations

from chat import views
from django.urls import path

urlpatterns = [
    path("", views.new_conversation, name="new"),
    path("c/<int:conversation_id>/", views.conversation, name="conversation"),
    path("c/<int:conversation_id>/send", views.send, name="send"),
    path("wsgi-probe", views.wsgi_probe, name="wsgi-probe"),
]
