"""/v1/Account/{auth_id}/... routes. Every path takes a trailing slash or not, for every method."""
from django.urls import re_path

from voicebots.accounts.views import AccountViewSet
from voicebots.bots.views import VoicebotViewSet
from voicebots.calls.views import CallViewSet
from voicebots.campaigns.views import CampaignViewSet
from voicebots.chats.views import VoicebotChatViewSet
from voicebots.functions.views import FunctionViewSet
from voicebots.knowledge.views import KnowledgebaseViewSet
from voicebots.numbers.views import NumberViewSet
from voicebots.recordings.views import CallRecordingViewSet
from voicebots.telephony import webhooks
from voicebots.webhooks.views import WebhookViewSet

from .views import COLLECTION_ACTIONS, ITEM_ACTIONS

ACCOUNT = r"^v1/Account/(?P<auth_id>[^/]+)/"
ITEM = r"(?P<pk>[^/]+)"
# The URLs Plivo calls back for one outbound call (see telephony.rest.call_url).
OUTBOUND_CALL_WEBHOOKS = {
    "answer": webhooks.outbound_answer, "ring": webhooks.outbound_ring, "hangup": webhooks.outbound_hangup,
    "machine": webhooks.outbound_machine, "voicemail": webhooks.outbound_voicemail,
}


def resource(prefix: str, viewset, name: str) -> list:
    return [
        re_path(rf"{ACCOUNT}{prefix}/?$", viewset.as_view(COLLECTION_ACTIONS), name=f"{name}-list"),
        re_path(rf"{ACCOUNT}{prefix}/{ITEM}/?$", viewset.as_view(ITEM_ACTIONS), name=f"{name}-detail"),
    ]


urlpatterns = [
    re_path(r"^v1/Account/(?P<auth_id>[^/]+)/?$",
            AccountViewSet.as_view({"get": "retrieve", "patch": "partial_update"}), name="account-detail"),
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
    *[re_path(rf"{ACCOUNT}Call/(?P<call_id>[^/]+)/{action}/?$", view, name=f"plivo-call-{action}")
      for action, view in OUTBOUND_CALL_WEBHOOKS.items()],
    re_path(rf"{ACCOUNT}Call/{ITEM}/recording/?$",
            CallRecordingViewSet.as_view({"get": "retrieve", "delete": "destroy"}), name="call-recording"),
    re_path(rf"{ACCOUNT}Call/?$", CallViewSet.as_view({"get": "list", "post": "create"}), name="call-list"),
    re_path(rf"{ACCOUNT}Call/{ITEM}/?$", CallViewSet.as_view({"get": "retrieve", "delete": "destroy"}),
            name="call-detail"),
    *[re_path(rf"{ACCOUNT}Campaign/{ITEM}/{action}/?$", CampaignViewSet.as_view({"post": action}),
              name=f"campaign-{action}") for action in ("schedule", "pause", "resume", "cancel")],
    re_path(rf"{ACCOUNT}Campaign/{ITEM}/contacts/?$",
            CampaignViewSet.as_view({"get": "contacts", "post": "upload_contacts"}), name="campaign-contacts"),
    *resource("Campaign", CampaignViewSet, "campaign"),
    re_path(rf"{ACCOUNT}Webhook/{ITEM}/rotate_secret/?$", WebhookViewSet.as_view({"post": "rotate_secret"}),
            name="webhook-rotate-secret"),
    re_path(rf"{ACCOUNT}Webhook/{ITEM}/deliveries/?$", WebhookViewSet.as_view({"get": "deliveries"}),
            name="webhook-deliveries"),
    re_path(rf"{ACCOUNT}Webhook/{ITEM}/deliveries/(?P<delivery_id>[^/]+)/retry/?$",
            WebhookViewSet.as_view({"post": "retry"}), name="webhook-delivery-retry"),
    *resource("Webhook", WebhookViewSet, "webhook"),
    re_path(rf"{ACCOUNT}Number/?$", NumberViewSet.as_view({"get": "list"}), name="number-list"),
    re_path(rf"{ACCOUNT}Number/(?P<number>[^/]+)/?$",
            NumberViewSet.as_view({"get": "retrieve", "patch": "partial_update"}), name="number-detail"),
]
