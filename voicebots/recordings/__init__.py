"""Call recordings: a stereo WAV per call (left the caller, right what the caller heard from the bot).

`wav.py` and `recorder.py` know nothing of Django (the recorder runs on the call's event loop); `storage.py`,
`services.py` and `live.py` put recordings in Django's storage and on the call's record.
"""
