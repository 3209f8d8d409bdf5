"""Conversations and their message pairs, saved as they end, interrupted ones included."""

from __future__ import annotations

from django.db import models


class Conversation(models.Model):
    created = models.DateTimeField(auto_now_add=True)


class Message(models.Model):
    STREAMING, COMPLETED, STOPPED, ERROR = "streaming", "completed", "stopped", "error"
    STATUSES = tuple((s, s) for s in (STREAMING, COMPLETED, STOPPED, ERROR))

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    prompt = models.TextField()
    answer = models.TextField(blank=True, default="")
    status = models.CharField(max_length=16, choices=STATUSES, default=STREAMING)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("id",)
