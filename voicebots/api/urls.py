"""/v1/Account/{auth_id}/... routes. Every path takes a trailing slash or not, for every method."""
from django.urls import re_path

from voicebots.bots.views import VoicebotViewSet
from voicebots.calls.views import CallViewSet
from voicebots.chats.views import VoicebotChatViewSet
from voicebots.functions.views import FunctionViewSet
from voicebots.knowledge.views import KnowledgebaseViewSet
from voicebots.telephony import webhooks

from .views import COLLECTION_ACTIONS, ITEM_ACTIONS

ACCOUNT = r"^v1/Account/(?P<auth_id>[^/]+)/"
ITEM = r"(?P<pk>[^/]+)"


def resource(prefix: str, viewset, name: str) -> list:
    return [
        re_path(rf"{ACCOUNT}{prefix}/?$", viewset.as_view(COLLECTION_ACTIONS), name=f"{name}-list"),
        re_path(rf"{ACCOUNT}{prefix}/{ITEM}/?$", viewset.as_view(ITEM_ACTIONS), name=f"{name}-detail"),
    ]


urlpatterns = [
    re_path(rf"{ACCOUNT}Voicebot/(?P<bot_id>[^/]+)/inbound_call/?$", webhooks.inbound_call, name="plivo-answer"),
    re_path(rf"{ACCOUNT}Voicebot/(?P<bot_id>[^/]+)/hangup/?$", webhooks.hangup, name="plivo-hangup"),
    re_path(rf"{ACCOUNT}Voicebot/(?P<bot_id>[^/]+)/stream_status/?$", webhooks.stream_status,
            name="plivo-stream-status"),
    re_path(rf"{ACCOUNT}Voicebot/{ITEM}/chat/?$", VoicebotChatViewSet.as_view({"post": "chat"}), name="voicebot-chat"),
    re_path(rf"{ACCOUNT}Knowledgebase/search/?$", KnowledgebaseViewSet.as_view({"post": "search"}),
            name="knowledgebase-search"),
    re_path(rf"{ACCOUNT}Knowledgebase/{ITEM}/file/?$", KnowledgebaseViewSet.as_view({"get": "download"}),
            name="knowledgebase-file"),
    *resource("Voicebot", VoicebotViewSet, "voicebot"),
    *resource("Function", FunctionViewSet, "function"),
    *resource("Knowledgebase", KnowledgebaseViewSet, "knowledgebase"),
    re_path(rf"{ACCOUNT}Call/?$", CallViewSet.as_view({"get": "list"}), name="call-list"),
    re_path(rf"{ACCOUNT}Call/{ITEM}/?$", CallViewSet.as_view({"get": "retrieve"}), name="call-detail"),
]
