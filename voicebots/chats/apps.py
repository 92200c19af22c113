from django.apps import AppConfig


class ChatsConfig(AppConfig):
    name = "voicebots.chats"
    verbose_name = "Conversations"
