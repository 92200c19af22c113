import uuid

from django.db import models

from voicebots.accounts.models import Account


class ChatSession(models.Model):
    """A conversation with a bot (the API's `session_id`), from the chat API or the playground."""

    class Channel(models.TextChoices):
        API = "api"
        PLAYGROUND = "playground"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="chat_sessions")
    voicebot = models.ForeignKey("bots.Voicebot", on_delete=models.CASCADE, related_name="chat_sessions")
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.API)
    # The model-facing history (conversation.storage's JSON, tool calls included) that the next turn continues.
    history = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["account", "voicebot", "-updated_at"])]
        verbose_name = "conversation"

    def __str__(self):
        return f"{self.voicebot} / {self.id}"


class ChatTurn(models.Model):
    """One user message and the bot's answer, with tool calls, passages used and timings."""

    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="turns")
    index = models.PositiveIntegerField()
    user_text = models.TextField()
    assistant_text = models.TextField(blank=True, default="")
    stop_reason = models.CharField(max_length=32, blank=True, default="")
    error = models.TextField(blank=True, default="")
    tool_calls = models.JSONField(default=list, blank=True)
    passages = models.JSONField(default=list, blank=True)
    timings = models.JSONField(default=dict, blank=True, help_text="Milliseconds: retrieval, first token, total.")
    usage = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["session", "index"]
        constraints = [models.UniqueConstraint(fields=["session", "index"], name="unique_turn_index")]

    def __str__(self):
        return f"Turn {self.index}"
