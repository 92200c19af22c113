"""The live-call runtime: everything a call needs that does not depend on what carries it.

`runtime.CallRuntime` starts and ends a call's pipeline (bot settings, vendors in the transport's audio
formats, the session, the record); transports implement its `Leg`: the Plivo stream (`voicebots.telephony`)
and the browser's voice playground (`voicebots.web`). Also here: the vendors of a call (`vendors`), its
record writer and greeting cache (`records`), its database threads (`database`), the bounded outbox of its
socket (`outbox`), the Channels consumer base of call sockets (`sockets`) and the live feed of a watched call
(`live`: what the voice playground shows as the call goes).

A package of its own rather than part of `calls/` (records of calls, imported by campaigns and the API, which
need not load the pipeline and the vendor SDKs) or `telephony/` (Plivo's, which a browser call must not need).
"""
